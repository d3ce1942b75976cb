"""Every error hoststream raises on purpose, under one root: :class:`HoststreamError`.

Each class says what happened; the message says what to do about it.

- :class:`ConfigurationError`: a setting is wrong; the command line exits with
  status 2 and the message names the setting.
- Sinks (:class:`SinkError`) tell their consumer loop what to do with a batch:
  :class:`SinkUnavailableError` / :class:`SinkBackpressureError` mean nothing
  is known to be wrong with the data (pause, back off, write the same batch
  again, so writes must be idempotent); :class:`InvalidRecordError` sends one
  record to the dead-letter topic and the pipeline goes on;
  :class:`SinkFatalError` stops the sink without committing until a person acts.
- Alert deliveries (:class:`DeliveryError`): the sink retries a
  :class:`RetryableDeliveryError` and dead-letters a
  :class:`PermanentDeliveryError`. Messages never carry a routing key or API
  key (see :func:`hoststream.sinks.alerts.router.redact`).
"""

from __future__ import annotations

__all__ = [
    "CertificateError",
    "ComponentDiedError",
    "ConfigurationError",
    "ConfigurationFileError",
    "DeliveryError",
    "HoststreamError",
    "InvalidRecordError",
    "KafkaAccessError",
    "ListenError",
    "PermanentDeliveryError",
    "PrerequisiteMissingError",
    "RateLimitedDeliveryError",
    "RetryableDeliveryError",
    "RoutingFileError",
    "RuleFileError",
    "SchemaRegistryUnavailableError",
    "SerializationError",
    "ServiceStartError",
    "SinkBackpressureError",
    "SinkError",
    "SinkFatalError",
    "SinkUnavailableError",
    "StackError",
    "StreamsError",
]


class HoststreamError(Exception):
    """Root of hoststream's own errors."""


class ConfigurationError(HoststreamError):
    """A setting is missing or invalid; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class CertificateError(HoststreamError):
    """A certificate file is unreadable, expired, not yet valid or untrusted; names the file."""


class KafkaAccessError(HoststreamError):
    """Kafka refused this principal (authentication, or an ACL it lacks); retrying will not help."""


class ListenError(HoststreamError):
    """A component could not open its port; the message names the port and its setting."""

    def __init__(self, host: str, port: int, setting: str, what: str, cause: OSError) -> None:
        self.host = host
        self.port = port
        self.setting = setting
        reason = cause.strerror or str(cause)
        super().__init__(f"cannot serve {what} on {host}:{port} ({setting}): {reason}")


class ConfigurationFileError(ConfigurationError):
    """A file a setting names is invalid; the message gives the file, the line and the reason."""

    def __init__(self, setting: str, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(setting, f"{where}: {reason}")


class ComponentDiedError(HoststreamError):
    """A component of ``hoststream run`` exited while the pipeline ran."""

    def __init__(self, component: str, state: str, last_error: str, log: object) -> None:
        self.component = component
        self.last_error = last_error
        where = f" (log: {log})" if log is not None else ""
        super().__init__(f"{component} {state}: {last_error or 'no output'}{where}")


class PrerequisiteMissingError(HoststreamError):
    """A program or file hoststream needs is not installed; the message says how to get it."""


class StackError(HoststreamError):
    """The local service stack could not be managed as asked."""


class ServiceStartError(StackError):
    """A local service did not come up in time; the message carries its last log lines."""


class SerializationError(HoststreamError):
    """A value could not be encoded to, or decoded from, its wire format."""


class SchemaRegistryUnavailableError(HoststreamError):
    """The schema registry did not answer; nothing is known to be wrong with the data: retry."""


class StreamsError(HoststreamError):
    """The stream processor could not set itself up; the message says what is missing."""


class RuleFileError(StreamsError, ConfigurationFileError):
    """An alert rule file (setting ``--rules``) is invalid; the CLI exits with status 2."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        ConfigurationFileError.__init__(self, "--rules", path, line, reason)


class SinkError(HoststreamError):
    """Root of the errors a sink raises."""


class SinkUnavailableError(SinkError):
    """The destination did not answer or failed; retry the same batch later."""


class SinkBackpressureError(SinkUnavailableError):
    """The destination asked to slow down; retry the same batch after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, reason: str = "the destination is overloaded") -> None:
        self.retry_after = max(0.0, retry_after)
        super().__init__(f"{reason}; retrying in {self.retry_after:.1f}s")


class InvalidRecordError(SinkError):
    """A record can never be stored (bad bytes, wrong schema, a value the destination refuses)."""


class SinkFatalError(SinkError):
    """The destination refuses every write until its configuration is fixed; the sink stops."""


class RoutingFileError(ConfigurationFileError):
    """The alert routing file is invalid; the message names the file, the line and the reason."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        super().__init__("HOSTSTREAM_ALERT_ROUTES_FILE", path, line, reason)


class DeliveryError(SinkError):
    """An alert did not reach one receiver."""

    def __init__(self, receiver: str, reason: str) -> None:
        self.receiver = receiver
        self.reason = reason
        super().__init__(f"{receiver}: {reason}")


class RetryableDeliveryError(DeliveryError):
    """The receiver failed or asked to slow down; send the same alert again later."""

    def __init__(self, receiver: str, reason: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(receiver, reason)


class RateLimitedDeliveryError(RetryableDeliveryError):
    """The receiver answered 429, or its documented rate limit is reached; send later."""


class PermanentDeliveryError(DeliveryError):
    """The receiver refused this alert for good; it goes to the dead-letter topic."""

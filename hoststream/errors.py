"""Every error hoststream raises on purpose derives from :class:`HoststreamError`.

Each class says what happened; the message says what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DeliveryError",
    "HoststreamError",
    "ListenError",
    "PrerequisiteMissingError",
    "SchemaRegistryUnavailableError",
    "SerializationError",
    "ServiceStartError",
    "StackError",
]


class HoststreamError(Exception):
    """Root of hoststream's own errors."""


class ConfigurationError(HoststreamError):
    """A setting is missing or invalid; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class ListenError(HoststreamError):
    """A component could not open its port; the message names the port and its setting."""

    def __init__(self, host: str, port: int, setting: str, what: str, cause: OSError) -> None:
        self.host = host
        self.port = port
        self.setting = setting
        reason = cause.strerror or str(cause)
        super().__init__(f"cannot serve {what} on {host}:{port} ({setting}): {reason}")


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


class DeliveryError(HoststreamError):
    """Kafka did not acknowledge a message."""

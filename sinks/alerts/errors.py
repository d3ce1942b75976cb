"""The errors of alert routing: a refused routing file, and the two ways a delivery fails.

A router raises :class:`RetryableDeliveryError` when nothing is known to be
wrong with the alert (the receiver is down, slow or rate-limiting) and
:class:`PermanentDeliveryError` when the receiver refused this alert for good;
the sink retries the first and dead-letters the second. Messages never carry
a routing key or API key (see :func:`sinks.alerts.router.redact`).
"""

from __future__ import annotations

from hoststream.errors import ConfigurationError
from hoststream.sinks.errors import SinkError

__all__ = [
    "DeliveryError",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "RoutingFileError",
]

ROUTES_SETTING = "HOSTSTREAM_ALERT_ROUTES_FILE"


class RoutingFileError(ConfigurationError):
    """The routing file is invalid; the message names the file, the line and the reason."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(ROUTES_SETTING, f"{where}: {reason}")


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


class PermanentDeliveryError(DeliveryError):
    """The receiver refused this alert for good; it goes to the dead-letter topic."""

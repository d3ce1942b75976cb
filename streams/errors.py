"""The stream processor's errors; each derives from :class:`hoststream.errors.HoststreamError`."""

from __future__ import annotations

from hoststream.errors import ConfigurationError, HoststreamError

__all__ = ["RuleFileError", "StreamsError"]


class StreamsError(HoststreamError):
    """The stream processor could not set itself up; the message says what is missing."""


class RuleFileError(StreamsError, ConfigurationError):
    """An alert rule file is invalid; the message gives the file, the line and the reason.

    A configuration error (setting ``--rules``), so the CLI exits with status 2.
    """

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        ConfigurationError.__init__(self, "--rules", f"{where}: {reason}")

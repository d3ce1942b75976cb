"""The errors a sink raises to tell its consumer loop what to do with a batch.

They sit beside the sinks rather than in :mod:`hoststream.errors` only because
this package was built separately; each derives from hoststream's root error.

- :class:`SinkBackpressureError` / :class:`SinkUnavailableError`: nothing is
  known to be wrong with the data; the loop pauses its partitions, backs off
  and writes the same batch again (so writes must be idempotent).
- :class:`InvalidRecordError`: this one record can never be stored; it goes to
  the dead-letter topic and the pipeline goes on.
- :class:`SinkFatalError`: no record can be stored until a person acts (bad
  credentials, wrong URL); the sink stops without committing.
"""

from __future__ import annotations

from hoststream.errors import HoststreamError

__all__ = [
    "InvalidRecordError",
    "SinkBackpressureError",
    "SinkError",
    "SinkFatalError",
    "SinkUnavailableError",
]


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

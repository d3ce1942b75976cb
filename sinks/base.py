"""The sink contract: what every destination implements, and what it is handed.

Start reading here. A sink (:class:`BatchingSink`) stores batches; the consumer
loop in :mod:`sinks.consumer` does everything else: polling, batching by size
and time, decoding, retrying with backoff, dead-lettering and committing. A
batch's offsets are committed only after :meth:`BatchingSink.write` returned,
so a sink that raises has stored nothing as far as Kafka is concerned and will
be handed the same records again: writes must be idempotent. A record refused
for good is returned as a :class:`~hoststream.dead_letters.Rejection`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hoststream.dead_letters import Rejection

__all__ = ["BatchingSink", "Headers", "SinkRecord"]

T = TypeVar("T")

#: Kafka message headers as confluent-kafka returns them.
Headers = list[tuple[str, str | bytes | None]]


@dataclass(slots=True, eq=False)
class SinkRecord(Generic[T]):
    """One consumed message: where it came from, its original bytes and its decoded value.

    Treated as immutable, but not frozen: one is made per message, and a
    frozen dataclass is made in four times the time (its ``__init__`` sets
    each field through ``object.__setattr__``). Compared by identity.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    decoded: T
    headers: Headers = field(default_factory=list)


class BatchingSink(ABC, Generic[T]):
    """A destination for decoded records.

    Subclasses implement :meth:`write`; :meth:`check` and :meth:`close` are
    optional. ``name`` labels the sink's Prometheus metrics and log lines.
    ``write_ahead`` lets the loop overlap a batch's write with reading the next.
    """

    name: str = "sink"
    #: Whether :meth:`write` may run on a thread of its own while the consumer
    #: loop decodes the next batch and calls :meth:`check`.
    write_ahead: bool = False
    #: Batches a write-ahead sink may have written at once (each on a writer
    #: thread of its own, so :meth:`write` must be thread-safe when above 1);
    #: they are committed in the order they were read.
    batches_in_flight: int = 1

    def check(self, value: T) -> None:
        """Raise :class:`~hoststream.errors.InvalidRecordError` if ``value`` can never be stored.

        Called once per record before it joins a batch, so values the
        destination would refuse (or, worse, drop silently) are dead-lettered
        on their own instead of failing a whole batch.
        """

    @abstractmethod
    def write(self, batch: Sequence[SinkRecord[T]]) -> Sequence[Rejection[SinkRecord[Any]]]:
        """Store every record of ``batch`` that can be stored; return the ones refused for good.

        Raises:
            SinkUnavailableError: the destination is down or overloaded
                (:class:`~hoststream.errors.SinkBackpressureError` says for how
                long); the whole batch will be written again.
            SinkFatalError: nothing can be stored until a person fixes the
                configuration.
        """

    def close(self) -> None:
        """Release connections; called once, after the last write."""

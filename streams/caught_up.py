"""How far the worker has read its source partitions, in wall-clock time.

The wall-clock close (:meth:`~streams.processor.BatchProcessor.close_quiet`)
may treat a host's silence as real only where the worker has read what Kafka
holds: where it has not, the host's next sample may be waiting unread.

Asking "is the partition read to its end now?" answers no most of the time
under steady load: messages keep arriving, and the worker is always a fetch
behind the partition's end at the instant it looks. So :class:`ReadHorizon`
asks it the other way round. It keeps *marks*: the partitions' high
watermarks with the wall time just before they were asked for. Once the
worker has processed up to a mark's watermark, everything appended to the
partition before that time has been processed: the partition is read to its
end *as of* that time. The wall-clock close then runs the partition's clock
at that time instead of now. That is as sound as looking at the instant of
being at the end (which is the case of a mark just taken), and it delays a
close by the age of the mark, a few hundred milliseconds, where waiting for
that instant delayed most windows by a host's next collection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from faust.types import TP

__all__ = ["ReadHorizon", "caught_up_partitions"]

#: How many marks are kept: enough to span a few seconds of a worker
#: catching up, which reaches older marks before newer ones.
DEFAULT_MARKS = 32


def caught_up_partitions(
    sources: Iterable[TP],
    highwaters: Mapping[TP, int],
    processed: Mapping[tuple[str, int], int],
    committed: Mapping[tuple[str, int], int],
) -> set[int]:
    """Partition numbers where every owned source partition has been read to ``highwaters``.

    A host is closed on wall clock only when its silence is real: where the
    worker still has messages to read (a backlog after a restart, or lag under
    load), the host's next sample may be waiting in Kafka.

    Args:
        sources: the source partitions the worker owns.
        highwaters: their high watermarks (end offsets); one missing is unknown.
        processed: the offset after the last message processed per (topic, partition).
        committed: the next offset to read where nothing was processed yet.
    """
    behind: set[int] = set()
    owned: set[int] = set()
    for tp in sources:
        owned.add(tp.partition)
        end = highwaters.get(tp)
        at = processed.get((tp.topic, tp.partition), committed.get((tp.topic, tp.partition)))
        if end is None or (end > 0 and (at is None or at < end)):
            behind.add(tp.partition)
    return owned - behind


@dataclass(frozen=True, slots=True)
class _Mark:
    at_ms: int
    highwaters: Mapping[TP, int]


class ReadHorizon:
    """Marks of the source partitions' ends, and how recent a one each partition has reached."""

    def __init__(self, keep: int = DEFAULT_MARKS) -> None:
        """Keep at most ``keep`` marks (the oldest go first)."""
        self._keep = keep
        self._marks: list[_Mark] = []  # oldest first

    @property
    def latest_ms(self) -> int | None:
        """The wall time of the newest mark; None before the first."""
        return self._marks[-1].at_ms if self._marks else None

    def mark(self, at_ms: int, highwaters: Mapping[TP, int]) -> None:
        """Note the high watermarks asked for at wall time ``at_ms`` (just before asking)."""
        if self._marks and at_ms < self._marks[-1].at_ms:
            return  # a clock stepped back: a mark must not claim more than a later one
        self._marks.append(_Mark(at_ms, dict(highwaters)))
        del self._marks[: -self._keep]

    def forget(self) -> None:
        """Drop every mark: the assignment changed, and what was read before tells nothing."""
        self._marks.clear()

    def read_until(
        self,
        sources: Iterable[TP],
        processed: Mapping[tuple[str, int], int],
        committed: Mapping[tuple[str, int], int],
    ) -> dict[int, int]:
        """Partition number to the latest mark's time as of which it was read to its end.

        A partition number is read as of a mark when every owned source
        partition of that number has been (see :func:`caught_up_partitions`);
        a number that has reached no kept mark is left out. Marks older than
        the newest one every partition has reached are dropped: they can
        tell nothing more.
        """
        tps = list(sources)
        owned = {tp.partition for tp in tps}
        found: dict[int, int] = {}
        for index in range(len(self._marks) - 1, -1, -1):
            mark = self._marks[index]
            for partition in caught_up_partitions(tps, mark.highwaters, processed, committed):
                found.setdefault(partition, mark.at_ms)
            if owned <= found.keys():
                del self._marks[:index]
                break
        return found

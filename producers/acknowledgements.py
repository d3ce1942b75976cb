"""Counting what Kafka acknowledged when librdkafka reports only failed deliveries.

A delivery report per message costs the producer's thread a Python object
and a call for every message (1.5 to 4 µs, about as much as producing it), which a
simulated fleet sending tens of thousands of messages a second pays for
nothing: almost every report says "delivered". With
``delivery.report.only.error`` only failures reach Python, and the count of
acknowledged messages follows from librdkafka's own: a message leaves
``len(producer)`` only once its delivery report was served, so

    acknowledged = queued - len(producer) - failed

holds exactly whenever the thread that polls looks (it alone serves reports).
Which messages those are is not reported: they are taken in the order they
were queued (librdkafka acknowledges each partition's messages in order, and
the partitions of one producer progress together), which gives each family's
events and the samples they carry. Once nothing is in flight (after a flush)
every figure is exact again: each family's acknowledged events and samples
are what was queued less what failed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from prometheus_client import Counter

__all__ = ["InOrderAcknowledgements", "QueuedRun"]


class QueuedRun:
    """Messages queued one after the other: the family and samples of each, and their totals.

    A batch's run is built once and queued again every tick.
    """

    __slots__ = ("families", "samples", "totals")

    def __init__(self, families: Sequence[str], samples: Sequence[int]) -> None:
        if len(families) != len(samples):
            raise ValueError("one family and one sample count per message")
        self.families = tuple(families)
        self.samples = tuple(samples)
        totals: dict[str, list[int]] = {}
        for family, count in zip(self.families, self.samples, strict=True):
            entry = totals.setdefault(family, [0, 0])
            entry[0] += 1
            entry[1] += count
        #: (family, events, samples) of the whole run.
        self.totals = tuple((family, events, n) for family, (events, n) in totals.items())

    def __len__(self) -> int:
        return len(self.families)


class _FamilyCounts:
    """One family's events and samples, and the counters they go to."""

    __slots__ = ("events", "events_counter", "samples", "samples_counter")

    def __init__(self, events_counter: Counter, samples_counter: Counter) -> None:
        self.events = 0
        self.samples = 0
        self.events_counter = events_counter
        self.samples_counter = samples_counter

    def add(self, events: int, samples: int) -> None:
        self.events += events
        self.samples += samples
        self.events_counter.inc(events)
        self.samples_counter.inc(samples)


class InOrderAcknowledgements:
    """Acknowledged events and samples, per family too, from librdkafka's count of what is left.

    Args:
        events: the counter of acknowledged events, labelled by family.
        samples: the counter of their samples, labelled by family.
    """

    def __init__(self, events: Counter, samples: Counter) -> None:
        self._events = events
        self._samples = samples
        self._pending: deque[QueuedRun] = deque()
        # Messages of the oldest pending run already counted as acknowledged.
        self._done_in_first = 0
        #: Messages (and their samples) queued, and per family.
        self.queued = 0
        self.queued_samples = 0
        self._queued: dict[str, list[int]] = {}
        #: Messages (and samples) reported failed, and per family.
        self.failed = 0
        self.failed_samples = 0
        self._failed: dict[str, list[int]] = {}
        # (family, samples) -> failures not yet matched to a pending message.
        self._unmatched: dict[tuple[str, int], int] = {}
        #: Messages (and samples) counted as acknowledged.
        self.acknowledged = 0
        self.acknowledged_samples = 0
        self._counted: dict[str, _FamilyCounts] = {}

    def queue(self, run: QueuedRun, sent: int | None = None) -> None:
        """``run``'s messages were queued (``sent``: only its first that many)."""
        if sent is not None and sent != len(run):
            if not sent:
                return
            run = QueuedRun(run.families[:sent], run.samples[:sent])
        self._pending.append(run)
        self.queued += len(run)
        for family, events, samples in run.totals:
            entry = self._queued.get(family)
            if entry is None:
                entry = self._queued[family] = [0, 0]
            entry[0] += events
            entry[1] += samples
            self.queued_samples += samples

    def fail(self, family: str, samples: int) -> None:
        """One message of ``family`` with ``samples`` samples was reported failed."""
        self.failed += 1
        self.failed_samples += samples
        entry = self._failed.setdefault(family, [0, 0])
        entry[0] += 1
        entry[1] += samples
        # Taken in order, the first pending message like it stands for it.
        self._unmatched[(family, samples)] = self._unmatched.get((family, samples), 0) + 1

    def settle(self, in_flight: int) -> None:
        """Count what is acknowledged now that ``in_flight`` messages are left in librdkafka."""
        if in_flight == 0:
            self._exact()
            return
        newly = self.queued - in_flight - self.failed - self.acknowledged
        pending = self._pending
        unmatched = self._unmatched
        while newly > 0 and pending:
            run = pending[0]
            done = self._done_in_first
            if done == 0 and newly >= len(run) and not unmatched:
                for family, events, samples in run.totals:
                    self._family(family).add(events, samples)
                    self.acknowledged_samples += samples
                self.acknowledged += len(run)
                newly -= len(run)
                pending.popleft()
                continue
            while done < len(run) and newly > 0:
                family, samples = run.families[done], run.samples[done]
                done += 1
                left = unmatched.get((family, samples))
                if left:
                    # A failed message's place: neither acknowledged nor in flight.
                    if left == 1:
                        del unmatched[(family, samples)]
                    else:
                        unmatched[(family, samples)] = left - 1
                    continue
                self._family(family).add(1, samples)
                self.acknowledged += 1
                self.acknowledged_samples += samples
                newly -= 1
            if done == len(run):
                pending.popleft()
                done = 0
            self._done_in_first = done

    def _exact(self) -> None:
        """Nothing in flight: each family's figures are what was queued less what failed.

        In flight, a message reported failed after a later one of its family
        was acknowledged may have been counted in that one's place; counters
        only grow, so such a family's count stays one too high, the rest are
        set right here.
        """
        self._pending.clear()
        self._done_in_first = 0
        self._unmatched.clear()
        for family, (events, samples) in self._queued.items():
            failed = self._failed.get(family, [0, 0])
            counted = self._family(family)
            counted.add(
                max(0, events - failed[0] - counted.events),
                max(0, samples - failed[1] - counted.samples),
            )
        self.acknowledged = self.queued - self.failed
        self.acknowledged_samples = self.queued_samples - self.failed_samples

    def _family(self, family: str) -> _FamilyCounts:
        counts = self._counted.get(family)
        if counts is None:
            counts = self._counted[family] = _FamilyCounts(
                self._events.labels(family), self._samples.labels(family)
            )
        return counts

"""The stream processor's consumer lag per source partition, as a Prometheus gauge.

The lag of a partition is its high watermark (the offset the next message will
get) minus the worker's position in it: the offset Faust last committed for
it, or, before the worker's first commit since it was assigned the partition,
the offset after the last message it processed there, or, before that, the
consumer's fetch position (where a restarted worker resumes). All are "the next
offset to read", so a worker that has caught up has a lag of 0. The fetch
position alone would hide a burst: it runs ahead of processing by all that the
consumer prefetched.

:func:`measure` asks the consumer through Faust's public consumer API
(``highwaters``, a ListOffsets request, so the number keeps growing while the
worker is paused or stuck, and ``position``); the committed offsets are the
ones Faust's monitor records at each commit (``app.monitor.tp_committed_offsets``,
cleared by Faust at each rebalance). :class:`ConsumerLag` keeps the gauge's
series to the partitions the worker owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from faust.types import TP
from prometheus_client import Gauge

__all__ = ["ConsumerLag", "LagSource", "measure", "partition_lag"]

log = logging.getLogger(__name__)


class LagSource(Protocol):
    """What :func:`measure` needs of a consumer (Faust's ``app.consumer`` has it)."""

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]: ...

    async def position(self, tp: TP) -> int | None: ...


def partition_lag(highwater: int | None, committed: int | None, position: int | None) -> int | None:
    """Messages between a partition's end and the worker's position in it.

    Args:
        highwater: the partition's high watermark (end offset); None: unknown.
        committed: the offset committed for the partition (the next to read);
            None: nothing committed since the partition was assigned.
        position: the consumer's fetch position, used when nothing was committed.

    Returns:
        The lag, never negative (the watermark may be older than the position);
        None when either end is unknown: unknown is not zero.
    """
    at = committed if committed is not None and committed >= 0 else position
    if highwater is None or highwater < 0 or at is None or at < 0:
        return None
    return max(0, highwater - at)


async def measure(
    consumer: LagSource,
    partitions: Iterable[TP],
    committed: Mapping[TP, int],
    *,
    timeout_s: float = 10.0,
) -> dict[TP, int]:
    """The lag of each of ``partitions`` that can be known now.

    A partition whose watermark or position the consumer cannot give (it is
    being reassigned, the broker is slow) is left out of the result rather
    than reported as 0; so are all of them when the watermarks cannot be read.

    Args:
        consumer: Faust's ``app.consumer``.
        partitions: the source partitions the worker owns.
        committed: the next offset to read per partition as far as the worker knows
            (``app.monitor.tp_committed_offsets``, else its processed offsets).
        timeout_s: bound on each request to the broker.
    """
    tps = sorted({TP(tp.topic, tp.partition) for tp in partitions})
    if not tps:
        return {}
    try:
        highwaters = await asyncio.wait_for(consumer.highwaters(*tps), timeout_s)
    except Exception as exc:  # a gauge must never stop the worker
        log.debug("consumer lag: no high watermarks: %r", exc)
        return {}
    found: dict[TP, int] = {}
    for tp in tps:
        done = committed.get(tp)
        position = None
        if done is None:
            try:
                position = await asyncio.wait_for(consumer.position(tp), timeout_s)
            except Exception as exc:  # e.g. revoked meanwhile
                log.debug("consumer lag: no position for %s: %r", tp, exc)
                continue
        lag = partition_lag(highwaters.get(tp), done, position)
        if lag is not None:
            found[tp] = lag
    return found


class ConsumerLag:
    """The ``hoststream_stream_consumer_lag{topic,partition}`` series of the owned partitions."""

    def __init__(self, gauge: Gauge) -> None:
        """Wrap the gauge (``StreamMetrics.consumer_lag``)."""
        self._gauge = gauge
        self._shown: set[TP] = set()

    @property
    def shown(self) -> frozenset[TP]:
        """The partitions that have a series now."""
        return frozenset(self._shown)

    def update(self, lags: Mapping[TP, int]) -> None:
        """Set the series of each partition in ``lags``; others keep their last value."""
        for tp, lag in lags.items():
            self._gauge.labels(tp.topic, str(tp.partition)).set(lag)
            self._shown.add(TP(tp.topic, tp.partition))

    def retain(self, owned: Iterable[TP]) -> None:
        """Remove the series of every partition not in ``owned`` (lost in a rebalance).

        Another worker reports those now; a stale value here would double them.
        """
        keep = {TP(tp.topic, tp.partition) for tp in owned}
        for tp in self._shown - keep:
            with contextlib.suppress(KeyError):
                self._gauge.remove(tp.topic, str(tp.partition))
        self._shown &= keep

"""The stream processor's consumer lag: the computation, the broker answers, the series."""

from __future__ import annotations

import asyncio

import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from hoststream.streams.lag import ConsumerLag, measure, partition_lag
from hoststream.streams.metrics import StreamMetrics

CPU0, CPU1, MEM0 = TP("metrics.cpu", 0), TP("metrics.cpu", 1), TP("metrics.memory", 0)


@pytest.mark.parametrize(
    ("highwater", "committed", "position", "lag"),
    [
        (100, 90, None, 10),  # committed: the next offset to read
        (100, 90, 95, 10),  # the committed offset wins over the fetch position
        (100, None, 97, 3),  # nothing committed yet: the fetch position
        (100, 100, None, 0),  # caught up
        (0, None, 0, 0),  # empty partition
        (90, 100, None, 0),  # a watermark older than the commit: never negative
        (None, 90, None, None),  # no watermark: unknown, not zero
        (-1, 90, None, None),
        (100, None, None, None),  # no position at all
        (100, None, -1, None),
        (100, -1, 40, 60),  # Faust's "nothing committed" offset
    ],
)
def test_partition_lag(highwater, committed, position, lag) -> None:
    assert partition_lag(highwater, committed, position) == lag


class Consumer:
    """Faust's consumer as far as measure() uses it."""

    def __init__(self, highwaters, positions, *, fail_highwaters: bool = False) -> None:
        self._highwaters = highwaters
        self._positions = positions
        self._fail = fail_highwaters
        self.asked: list[tuple[TP, ...]] = []

    async def highwaters(self, *partitions):
        self.asked.append(partitions)
        if self._fail:
            raise RuntimeError("broker down")
        return {tp: self._highwaters[tp] for tp in partitions if tp in self._highwaters}

    async def position(self, tp):
        if tp not in self._positions:
            raise RuntimeError(f"{tp} is not assigned")  # aiokafka's IllegalStateError
        return self._positions[tp]


def run(coro):
    return asyncio.run(coro)


def test_measure_uses_committed_offsets_then_positions() -> None:
    consumer = Consumer({CPU0: 50, CPU1: 7, MEM0: 12}, {CPU1: 3, MEM0: 12})
    found = run(measure(consumer, [MEM0, CPU1, CPU0, CPU0], {CPU0: 45}))
    assert found == {CPU0: 5, CPU1: 4, MEM0: 0}
    assert consumer.asked == [(CPU0, CPU1, MEM0)]  # one request, each partition once


def test_measure_leaves_out_what_it_cannot_know() -> None:
    # No watermark for MEM0, no position for CPU1 (revoked meanwhile).
    consumer = Consumer({CPU0: 50, CPU1: 7}, {CPU0: 40})
    assert run(measure(consumer, [CPU0, CPU1, MEM0], {})) == {CPU0: 10}
    failing = Consumer({CPU0: 50}, {CPU0: 40}, fail_highwaters=True)
    assert run(measure(failing, [CPU0], {})) == {}
    assert run(measure(consumer, [], {})) == {}


def test_measure_gives_up_on_a_broker_that_does_not_answer() -> None:
    class Slow(Consumer):
        async def highwaters(self, *partitions):
            await asyncio.sleep(10)

    assert run(measure(Slow({}, {}), [CPU0], {}, timeout_s=0.01)) == {}


def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    [family] = [f for f in registry.collect() if f.name == "hoststream_stream_consumer_lag"]
    return {(s.labels["topic"], s.labels["partition"]): s.value for s in family.samples}


def test_series_follow_the_owned_partitions() -> None:
    registry = CollectorRegistry()
    lag = ConsumerLag(StreamMetrics(registry).consumer_lag)
    assert samples(registry) == {}
    lag.update({CPU0: 5, CPU1: 0})
    assert samples(registry) == {("metrics.cpu", "0"): 5.0, ("metrics.cpu", "1"): 0.0}
    lag.update({CPU0: 2, MEM0: 9})
    assert samples(registry) == {
        ("metrics.cpu", "0"): 2.0,
        ("metrics.cpu", "1"): 0.0,
        ("metrics.memory", "0"): 9.0,
    }
    # A rebalance took CPU1 and MEM0 away (and gave CPU1 back, then took it again).
    lag.retain([CPU0, CPU1])
    lag.retain([CPU0])
    assert samples(registry) == {("metrics.cpu", "0"): 2.0}
    assert lag.shown == {CPU0}
    lag.retain([])
    assert samples(registry) == {}
    lag.update({CPU1: 1})
    assert samples(registry) == {("metrics.cpu", "1"): 1.0}

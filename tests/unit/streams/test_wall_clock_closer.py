"""The wall-clock closer closes a window once due, even while its input never pauses.

Faust's app and monitor and the Kafka offsets are TEST DOUBLES here (a few
attributes); the processor is the real one over a dict, as in test_processor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from faust.types import TP
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.schemas import MetricEvent, Sample, WindowAggregate, codec_for
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.app import _WallClockCloser
from hoststream.streams.group_offsets import GroupOffsets
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.processor import BatchProcessor
from tests.support.doubles.admin import RestartingBrokerAdmin
from tests.support.doubles.faust import Message

T0 = 1_798_761_600_000
SOURCE = TP("metrics.system", 0)
CODEC = codec_for(Settings(schema_registry_url=None), MetricEvent)


class Harness:
    """A processor of 1m windows with 10 s grace over a dict, its clock at ``now``."""

    def __init__(self) -> None:
        self.now = T0
        self.emitted: list[WindowAggregate] = []
        self.next_offset = 0

        async def emit(closed, alerts) -> None:
            self.emitted += closed.aggregates()

        async def reject(rejection) -> None:
            raise AssertionError(rejection)

        self.processor = BatchProcessor(
            WindowAggregator(("1m",), grace_ms=10_000, metrics=StreamMetrics(CollectorRegistry())),
            {},
            decode=CODEC.deserializer,
            emit=emit,
            reject=reject,
            family_of_topic={"metrics.system": "system"},
            clock_ms=lambda: self.now,
        )

    def message(self, host: str, ts: int, value: float) -> Message:
        """The next message of partition 0, with its offset, as Kafka would hand it out."""
        event = MetricEvent(host, "system", ts, (Sample("node_load1", value),))
        m = Message("metrics.system", 0, CODEC.serializer(event))
        m.offset = self.next_offset  # type: ignore[attr-defined]
        self.next_offset += 1
        return m

    def process(self, messages: list[Message]) -> None:
        asyncio.run(self.processor.process(messages))


@dataclass
class Kafka:
    """A TEST DOUBLE of GroupOffsets: partition ends ``unread`` messages past ``read``.

    With one unread message the partition is never read to its end at the
    instant anyone looks, as under a steady stream of input. The group has
    committed nothing.
    """

    read: Callable[[], dict[tuple[str, int], int]]
    unread: int
    asked: list[int] = field(default_factory=list)

    def ends(self, tps: list[TP]) -> dict[TP, int]:
        self.asked.append(len(tps))
        read = self.read()
        return {tp: read.get((tp.topic, tp.partition), 0) + self.unread for tp in tps}

    def committed(self, partitions: object) -> dict[tuple[str, int], int]:
        return {}


class Topics:
    """A TEST DOUBLE of the worker's topics: it owns partition 0 of one source topic."""

    def owned_sources(self) -> list[TP]:
        return [SOURCE]


def closer_over(h: Harness, kafka: Kafka) -> _WallClockCloser:
    app = SimpleNamespace(
        rebalancing=False, in_recovery=False, monitor=SimpleNamespace(tp_committed_offsets={})
    )
    return _WallClockCloser(
        app,  # type: ignore[arg-type]
        Topics(),  # type: ignore[arg-type]
        h.processor,
        1.0,
        kafka,  # type: ignore[arg-type]
        clock_ms=lambda: h.now,
    )


def run_until_a_closes(h: Harness, closer: _WallClockCloser, until: int) -> int | None:
    """Host "a" reports every 10 s up to T0 + 50 s; host "b" sends every 100 ms.

    Returns when the timer closed a window of "a", None if not by ``until``.
    """
    h.now = T0 - 3_000
    while h.now < until:
        batch = [h.message("b", h.now, 0.0)]
        if h.now % 10_000 == 7_000 and h.now < T0 + 60_000:
            batch.append(h.message("a", h.now + 3_000, 1.0))
        h.process(batch)
        asyncio.run(closer.look())
        if any(a.host == "a" for a in h.emitted):
            return h.now
        h.now += 100
    return None


def test_a_due_window_closes_within_a_look_although_its_partition_is_never_at_its_end() -> None:
    h = Harness()
    kafka = Kafka(h.processor.next_offsets, unread=1)
    closed_at = run_until_a_closes(h, closer_over(h, kafka), T0 + 80_000)
    # Due at the window's end plus grace; closed a look or two later, with one
    # more request for the partition's ends than the periodic ones (one a second).
    assert closed_at is not None
    assert T0 + 70_000 <= closed_at <= T0 + 70_000 + 300
    assert [(a.window_start, a.count) for a in h.emitted if a.host == "a"] == [(T0, 6)]
    assert len(kafka.asked) <= (closed_at - T0 + 3_000) // 1_000 + 2


def test_a_worker_behind_its_partitions_ends_closes_nothing_on_wall_clock() -> None:
    h = Harness()
    # A backlog the worker never reads through (as after a restart): the
    # host's next sample may be in it.
    kafka = Kafka(h.processor.next_offsets, unread=1_000)
    assert run_until_a_closes(h, closer_over(h, kafka), T0 + 90_000) is None


def test_a_window_whose_events_arrive_after_a_kafka_restart_closes_on_wall_clock() -> None:
    # Host "a" reports at T0 + 3 s, 13 s, ... 53 s. Kafka is down from T0 + 30 s
    # to T0 + 90 s: the samples of 33 s to 53 s wait in the host's producer and
    # reach the worker after the restart, as a late backlog. The broker comes
    # back with new leader epochs (RestartingBrokerAdmin), and the worker's own
    # admin client asks for the partitions' ends throughout.
    h = Harness()
    admin = RestartingBrokerAdmin()
    closer = closer_over(h, GroupOffsets(Settings(), "group", admin=admin))  # type: ignore[arg-type]
    buffered: list[int] = []

    def append(batch: list[Message]) -> None:
        admin.ends[("metrics.system", 0)] = h.next_offset
        h.process(batch)

    h.now = T0
    closed_at = None
    while h.now < T0 + 130_000 and closed_at is None:
        due = [T0 + n * 10_000 + 3_000 for n in range(6) if T0 + n * 10_000 + 3_000 == h.now]
        if h.now == T0 + 30_000:
            admin.stop()
        if h.now == T0 + 90_000:
            admin.start()
        if not admin.up:
            buffered += due
        elif buffered or due:
            append([h.message("a", ts, 1.0) for ts in [*buffered, *due]])
            buffered.clear()
        asyncio.run(closer.look())
        if any(a.host == "a" for a in h.emitted):
            closed_at = h.now
        h.now += 100
    # The window's last sample arrived at T0 + 90 s, 37 s behind: with that lag
    # its end plus grace comes at T0 + 107 s of the wall clock.
    assert closed_at is not None, "the window never closed after the restart"
    assert T0 + 107_000 <= closed_at <= T0 + 107_000 + 1_000
    assert [(a.window_start, a.count) for a in h.emitted if a.host == "a"] == [(T0, 6)]

"""The columnar processor against the independent reference, on random deliveries.

Hypothesis draws events of a few hosts (series sets that change, counters
that reset, values that repeat), delivers them interleaved, some twice (with
the same or another value), some after their window closed, in batches of
random size, with restarts from the table in between (optionally redelivering
the last batch, as after a crash before the offset commit). Every window the
processor emits must be what the reference computes from the samples that a
one-event-at-a-time reading of the same deliveries accepts, and a window
emitted again must be identical.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.schemas import MetricEvent, MetricKind, Sample, WindowAggregate, codec_for
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.processor import BatchProcessor
from hoststream.streams.windows import WindowSize
from tests.support.reference import expected

T0 = 1_798_761_600_000
PANE = WindowSize(10_000)
WINDOWS = (PANE, WindowSize(60_000))
GRACE_MS = 5_000
SETTINGS = Settings(schema_registry_url=None)
SERIALIZE = codec_for(SETTINGS, MetricEvent).serializer
SERIES = (
    ("node_load1", {}, MetricKind.GAUGE),
    ("node_network_receive_bytes_total", {"device": "eth0"}, MetricKind.COUNTER),
    ("node_network_receive_bytes_total", {"device": "eth1"}, MetricKind.COUNTER),
)
HOSTS = ("a", "b", "c")


@dataclass
class Message:
    topic: str
    partition: int
    value: bytes


@st.composite
def deliveries(draw: st.DrawFn) -> list[MetricEvent]:
    """Events in delivery order: interleaved hosts, repeats, late and out-of-order ones."""
    out = []
    for _ in range(draw(st.integers(1, 60))):
        host = draw(st.sampled_from(HOSTS))
        ts = T0 + draw(st.integers(0, 36)) * 5_000
        chosen = draw(st.lists(st.sampled_from(range(len(SERIES))), min_size=1, unique=True))
        # Gauges may be negative; counters (the validation contract) may not.
        values = [draw(st.integers(-8 if i == 0 else 0, 40)) / 4 for i in range(len(SERIES))]
        samples = tuple(Sample(SERIES[i][0], values[i], SERIES[i][1], SERIES[i][2]) for i in chosen)
        out.append(MetricEvent(host, "system", ts, samples, interval_ms=5_000))
    return out


def reference(events: list[MetricEvent]) -> dict[tuple, tuple[list[tuple[int, float]], bool]]:
    """Per window: the accepted points (last delivery wins) and whether it is a counter."""
    watermark: dict[str, int] = {}
    points: dict[tuple, dict[int, float]] = {}
    kinds: dict[tuple, MetricKind] = {}
    for event in events:
        wm = watermark.get(event.host)
        if wm is None or PANE.start_of(event.timestamp_ms) >= PANE.start_of(wm - GRACE_MS):
            for s in event.samples:
                key = (event.host, s.name, tuple(sorted(s.labels.items())))
                points.setdefault(key, {})[event.timestamp_ms] = s.value
                kinds[key] = s.kind
        watermark[event.host] = event.timestamp_ms if wm is None else max(wm, event.timestamp_ms)
    windows: dict[tuple, tuple[list[tuple[int, float]], bool]] = {}
    for key, by_ts in points.items():
        for size in WINDOWS:
            for ts, value in by_ts.items():
                window = (*key, size.ms, size.start_of(ts))
                windows.setdefault(window, ([], kinds[key] is MetricKind.COUNTER))[0].append(
                    (ts, value)
                )
    return windows


class Worker:
    def __init__(self, table: dict[bytes, bytes], emitted: list[WindowAggregate]) -> None:
        self.now = T0

        async def emit(closed, alerts) -> None:
            emitted.extend(closed.aggregates())

        async def reject(rejection) -> None:
            raise AssertionError(rejection.reason)

        self.processor = BatchProcessor(
            WindowAggregator(
                WINDOWS,
                grace_ms=GRACE_MS,
                derive_cpu_utilisation=False,
                metrics=StreamMetrics(CollectorRegistry()),
            ),
            table,
            decode=codec_for(SETTINGS, MetricEvent).deserializer,
            emit=emit,
            reject=reject,
            family_of_topic={"metrics.system": "system"},
            clock_ms=lambda: self.now,
        )


@settings(max_examples=60, deadline=None)
@given(
    events=deliveries(),
    cuts=st.lists(st.integers(0, 60), max_size=8),
    restarts=st.lists(st.tuples(st.integers(0, 8), st.booleans()), max_size=3),
)
def test_columnar_processor_equals_the_reference(events, cuts, restarts) -> None:
    messages = [Message("metrics.system", HOSTS.index(e.host) % 2, SERIALIZE(e)) for e in events]
    bounds = sorted({0, len(messages), *(min(c, len(messages)) for c in cuts)})
    batches = [messages[a:b] for a, b in itertools.pairwise(bounds)]
    restart_after = dict(restarts)
    table: dict[bytes, bytes] = {}
    emitted: list[WindowAggregate] = []
    worker = Worker(table, emitted)
    for number, batch in enumerate(batches):
        asyncio.run(worker.processor.process(batch))
        if number in restart_after:
            worker = Worker(table, emitted)
            if restart_after[number]:  # crashed before the commit: the batch comes again
                asyncio.run(worker.processor.process(batch))
    for wall in (T0 + 3_600_000, T0 + 7_200_000):  # after a restart, a quiet period first
        worker.now = wall
        asyncio.run(worker.processor.close_quiet([0, 1]))

    got: dict[tuple, WindowAggregate] = {}
    for a in emitted:
        key = (a.host, a.metric, tuple(sorted(a.labels.items())), a.window_size_ms, a.window_start)
        assert got.setdefault(key, a) == a, "a window emitted twice differs"
    want = reference(events)
    assert set(got) == set(want)
    for key, (points, counter) in want.items():
        a, ref = got[key], expected(points, counter)
        assert (a.count, a.sum, a.min, a.max, a.mean, a.last) == (
            ref.count,
            ref.sum,
            ref.min,
            ref.max,
            ref.mean,
            ref.last,
        ), key
        assert {q: getattr(a, q) for q in ref.quantiles} == ref.quantiles
        if ref.rate_per_second is None:
            assert a.rate_per_second is None
        else:
            assert abs(a.rate_per_second - ref.rate_per_second) <= 1e-9 * abs(ref.rate_per_second)

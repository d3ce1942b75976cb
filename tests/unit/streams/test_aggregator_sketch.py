"""Windows holding many samples: quantiles from the sketch, within its stated bound.

The reference (tests/support/reference.py) stays exact; where a window holds
more samples than the aggregator keeps exactly, its quantiles are compared with
the exact ones within the relative accuracy the aggregate reports, and every
other statistic exactly (sums to 1e-12, as a rollup adds pane sums).
"""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry

from hoststream.schemas.records import MetricEvent, MetricKind, Sample, WindowAggregate
from hoststream.streams.aggregator import DEFAULT_EXACT_SAMPLES, WindowAggregator
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.state import FamilyState, StateRecords
from tests.support.reference import expected, windows_of

T0 = 1_798_761_600_000
MIN = 60_000
ALPHA = 0.01
GAUGE = "node_load1"
COUNTER = "node_context_switches_total"


def make(exact_samples: int, windows=("1m", "5m")) -> WindowAggregator:
    return WindowAggregator(
        windows,
        grace_ms=10_000,
        metrics=StreamMetrics(CollectorRegistry()),
        exact_samples=exact_samples,
        relative_accuracy=ALPHA,
    )


def dense_and_sparse(seed: int, every_ms: int, minutes: int) -> list[MetricEvent]:
    """A gauge of both signs in every event, and a counter (with resets) in some.

    The counter is sent densely in odd minutes and sparsely in even ones, so a
    5m window rolls up exact panes and sketched panes of the same series.
    """
    rng = random.Random(seed)
    events = []
    counter = 0.0
    for i in range(minutes * MIN // every_ms):
        ts = T0 + i * every_ms
        value = rng.choice([-1.0, 1.0, 1.0, 0.0]) * rng.lognormvariate(1, 2)
        samples = [Sample(GAUGE, value)]
        minute = (ts - T0) // MIN
        if minute % 2 == 1 or i % 10 == 0:
            counter = 0.0 if rng.random() < 0.02 else counter + rng.uniform(0, 500)
            samples.append(Sample(COUNTER, counter, kind=MetricKind.COUNTER))
        events.append(MetricEvent("h1", "system", ts, tuple(samples)))
    return events


def run(agg: WindowAggregator, events, through_bytes: bool = False):
    state = agg.new_state("h1", "system")
    out: list[WindowAggregate] = []
    sketched_panes = 0
    for event in events:
        out += agg.add(state, event).aggregates
        sketched_panes = max(sketched_panes, len(state.sketches))
        if through_bytes:
            state = FamilyState.from_bytes(state.to_bytes())
    out += agg.close_on_wall_clock(state, events[-1].timestamp_ms + 3_600_000)
    return out, sketched_panes


def points_of(events, metric: str) -> list[tuple[int, float]]:
    return [(e.timestamp_ms, s.value) for e in events for s in e.samples if s.name == metric]


def check_against_reference(aggregates, events, exact_samples: int) -> tuple[int, int]:
    """Every window within bound of the exact reference; (exact, sketched) windows seen."""
    index = {(a.metric, a.window_size_ms, a.window_start): a for a in aggregates}
    assert len(index) == len(aggregates)
    seen = [0, 0]
    for metric, counter in ((GAUGE, False), (COUNTER, True)):
        points = points_of(events, metric)
        for size in (MIN, 5 * MIN):
            for start, window in windows_of(points, size).items():
                got = index.pop((metric, size, start))
                ref = expected(window, counter)
                assert got.count == ref.count
                assert (got.min, got.max, got.last) == (ref.min, ref.max, ref.last)
                assert got.sum == pytest.approx(ref.sum, rel=1e-12, abs=1e-12)
                if ref.rate_per_second is None:
                    assert got.rate_per_second is None
                else:
                    assert got.rate_per_second == pytest.approx(ref.rate_per_second, rel=1e-12)
                if ref.count <= exact_samples:
                    assert got.quantile_relative_error == 0.0
                    assert {q: getattr(got, q) for q in ref.quantiles} == ref.quantiles
                    seen[0] += 1
                else:
                    # The sketch's stated bound, checked for every quantile.
                    assert got.quantile_relative_error == ALPHA
                    for name, true in ref.quantiles.items():
                        estimate = getattr(got, name)
                        assert abs(estimate - true) <= ALPHA * abs(true), (size, name, true)
                    seen[1] += 1
    assert not index, f"windows without a reference: {sorted(index)[:3]}"
    return seen[0], seen[1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_windows_beyond_the_exact_limit_keep_every_quantile_within_the_stated_error(
    seed: int,
) -> None:
    # Every 250 ms: 240 gauge samples a minute, 1,200 in five; the counter has
    # 240 in its dense minutes and 24 in its sparse ones.
    events = dense_and_sparse(seed, 250, 11)
    aggregates, sketched_panes = run(make(DEFAULT_EXACT_SAMPLES), events)
    exact, sketched = check_against_reference(aggregates, events, DEFAULT_EXACT_SAMPLES)
    assert exact > 0
    assert sketched > 0
    assert sketched_panes > 0  # the 5m windows rolled up sketched panes


def test_rollups_merge_exact_with_exact_exact_with_sketch_and_sketch_with_sketch() -> None:
    # A limit of 30 samples, events every second: a minute's 60 gauge samples
    # are sketched, the counter's sparse minutes (6 samples) stay exact, and
    # its 5m windows hold both. Two sparse minutes alone (12) roll up exactly.
    events = dense_and_sparse(4, 1_000, 11)
    agg = make(30)
    aggregates, sketched_panes = run(agg, events)
    check_against_reference(aggregates, events, 30)
    assert sketched_panes > 0
    sparse_only = [e for e in events if (e.timestamp_ms - T0) // MIN in (0, 2)]
    only_sparse_counter = [
        MetricEvent(e.host, e.family, e.timestamp_ms, e.samples[1:])
        for e in sparse_only
        if len(e.samples) == 2
    ]
    closed, _ = run(make(30, windows=("1m", "5m")), only_sparse_counter)
    five = [a for a in closed if a.window_size_ms == 5 * MIN]
    assert [(a.count, a.quantile_relative_error) for a in five] == [(12, 0.0)]


def test_a_state_holding_sketches_restores_exactly_from_its_records() -> None:
    events = dense_and_sparse(5, 500, 7)
    agg = make(DEFAULT_EXACT_SAMPLES)
    straight, sketched_panes = run(agg, events)
    assert sketched_panes > 0
    # The state through its bytes after every event, as after a restart.
    restored, _ = run(agg, events, through_bytes=True)
    assert restored == straight
    # And through the changelog records a worker writes.
    state = agg.new_state("h1", "system")
    for event in events[: len(events) * 4 // 7]:
        agg.add(state, event)
    assert state.sketches
    records = StateRecords.of(state, MIN)
    back = StateRecords.restore(records.header, records.series, records.segments.values())
    assert back.sketches.keys() == state.sketches.keys()
    for start, sketch in state.sketches.items():
        assert back.sketches[start].to_bytes() == sketch.to_bytes()
    assert StateRecords.of(back, MIN) == records


def test_windows_within_the_exact_limit_are_unchanged_by_the_sketch() -> None:
    # The default interval (10 s): 6 samples a minute, 30 in five; all exact,
    # and no pane is ever held as a sketch.
    events = dense_and_sparse(6, 10_000, 16)
    aggregates, sketched_panes = run(make(DEFAULT_EXACT_SAMPLES), events)
    exact, sketched = check_against_reference(aggregates, events, DEFAULT_EXACT_SAMPLES)
    assert sketched == 0
    assert exact > 0
    assert sketched_panes == 0

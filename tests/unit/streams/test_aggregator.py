"""The aggregation core against an independent reference (tests/unit/streams/reference.py)."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry

from hoststream.schemas.records import MetricEvent, MetricKind, Sample, WindowAggregate
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.cpu import CPU_BUSY_RATIO
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.state import FamilyState
from tests.support.reference import expected, windows_of

T0 = 1_798_761_600_000  # 2027-01-01T00:00:00Z, a multiple of every window size
MIN = 60_000
ALPHA = 0.01


def gauge(ts: int, value: float, host: str = "h1", name: str = "node_load1", **labels: str):
    return MetricEvent(host, "system", ts, (Sample(name, value, labels),))


def counter_event(ts: int, value: float, host: str = "h1") -> MetricEvent:
    sample = Sample(
        "node_network_receive_bytes_total", value, {"device": "eth0"}, MetricKind.COUNTER
    )
    return MetricEvent(host, "network", ts, (sample,))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def make(registry: CollectorRegistry, windows=("1m", "5m"), grace_ms: int = 10_000, **kw):
    return WindowAggregator(windows, grace_ms=grace_ms, metrics=StreamMetrics(registry), **kw)


def feed(agg: WindowAggregator, events, state: FamilyState | None = None):
    state = state or agg.new_state(events[0].host, events[0].family)
    out: list[WindowAggregate] = []
    for event in events:
        out += agg.add(state, event).aggregates
    return state, out


def by_window(aggregates) -> dict[tuple, WindowAggregate]:
    index = {}
    for a in aggregates:
        key = (a.host, a.metric, tuple(sorted(a.labels.items())), a.window_size_ms, a.window_start)
        assert key not in index, f"window emitted twice: {key}"
        index[key] = a
    return index


def assert_matches(agg: WindowAggregate, points, counter: bool = False, exact_sum: bool = True):
    ref = expected(points, counter)
    assert agg.count == ref.count
    assert agg.min == ref.min
    assert agg.max == ref.max
    assert agg.last == ref.last
    if exact_sum:
        assert agg.sum == ref.sum
        assert agg.mean == ref.mean
    else:  # a rollup adds per-minute sums: equal up to rounding of a few additions
        assert agg.sum == pytest.approx(ref.sum, rel=1e-12)
        assert agg.mean == pytest.approx(ref.mean, rel=1e-12)
    # Every window keeps its samples, so its quantiles are exact (error 0).
    assert agg.quantile_relative_error == 0.0
    for name, true in ref.quantiles.items():
        estimate = getattr(agg, name)
        assert abs(estimate - true) <= ALPHA * abs(true) + 1e-12, (name, estimate, true)
    if counter:
        assert agg.rate_per_second == pytest.approx(ref.rate_per_second, rel=1e-12)
    else:
        assert agg.rate_per_second is None


def test_gauge_windows_match_reference(registry) -> None:
    rng = random.Random(7)
    agg = make(registry)
    points = {
        host: [(T0 + i * 5_000, rng.lognormvariate(0, 1.5)) for i in range(12 * 12)]
        for host in ("a", "b", "c")
    }
    emitted: list[WindowAggregate] = []
    states = {}
    for i in range(12 * 12):
        for host, series in points.items():
            states.setdefault(host, agg.new_state(host, "system"))
            ts, value = series[i]
            emitted += agg.add(states[host], gauge(ts, value, host)).aggregates
    for state in states.values():  # flush what event time has not closed yet
        emitted += agg.close_on_wall_clock(state, T0 + 3_600_000)
    index = by_window(emitted)
    expected_keys = set()
    for host, series in points.items():
        for size in (MIN, 5 * MIN):
            for start, window_points in windows_of(series, size).items():
                key = (host, "node_load1", (), size, start)
                expected_keys.add(key)
                assert_matches(index[key], window_points, exact_sum=size == MIN)
                assert index[key].window_end == start + size
    assert set(index) == expected_keys


def test_late_sample_inside_grace_is_merged(registry) -> None:
    agg = make(registry, windows=("1m",), grace_ms=10_000)
    events = [gauge(T0 + s * 1000, float(s)) for s in (0, 10, 20, 30, 40, 50, 60, 65)]
    # 55 s belongs to the first minute; the watermark is at 65 s < 60 s + grace.
    events.append(gauge(T0 + 55_000, 55.0))
    events.append(gauge(T0 + 70_000, 70.0))  # closes [0, 60 s)
    _, out = feed(agg, events)
    assert len(out) == 1
    assert_matches(out[0], [(T0 + s * 1000, float(s)) for s in (0, 10, 20, 30, 40, 50, 55)])
    assert registry.get_sample_value(
        "hoststream_stream_late_samples_total", {"family": "system"}
    ) in (None, 0.0)


def test_late_sample_beyond_grace_is_counted_not_merged(registry) -> None:
    agg = make(registry, windows=("1m",), grace_ms=10_000)
    events = [gauge(T0 + s * 1000, float(s)) for s in (0, 10, 20, 30, 40, 50, 60, 70)]
    state, out = feed(agg, events)
    assert [a.count for a in out] == [6]
    outcome = agg.add(state, gauge(T0 + 59_000, 1e9))
    assert outcome.late_samples == 1
    assert outcome.aggregates == []
    assert (
        registry.get_sample_value("hoststream_stream_late_samples_total", {"family": "system"}) == 1
    )
    # The closed window is not reopened: the late value shows up nowhere.
    rest = agg.close_on_wall_clock(state, T0 + 3_600_000)
    assert [(a.window_start, a.max) for a in rest] == [(T0 + MIN, 70.0)]


def test_sample_for_a_window_that_never_opened_beyond_grace_is_late(registry) -> None:
    agg = make(registry, windows=("1m",), grace_ms=10_000)
    state, _ = feed(agg, [gauge(T0 + 200_000, 1.0)])
    assert agg.add(state, gauge(T0 + 30_000, 2.0)).late_samples == 1


def test_quiet_host_closes_on_wall_clock(registry) -> None:
    agg = make(registry, windows=("1m", "5m"), grace_ms=10_000)
    state, out = feed(agg, [gauge(T0 + s * 1000, float(s)) for s in range(0, 90, 10)])
    assert [(a.window_size_ms, a.window_start) for a in out] == [(MIN, T0)]
    # The host goes quiet: nothing more closes by event time.
    assert agg.close_on_wall_clock(state, T0 + 2 * MIN + 9_999) == []
    closed = agg.close_on_wall_clock(state, T0 + 2 * MIN + 10_000)
    assert [(a.window_size_ms, a.window_start, a.count) for a in closed] == [(MIN, T0 + MIN, 3)]
    closed = agg.close_on_wall_clock(state, T0 + 5 * MIN + 10_000)
    assert [(a.window_size_ms, a.window_start, a.count) for a in closed] == [(5 * MIN, T0, 9)]
    assert state.chunks == []
    assert registry.get_sample_value("hoststream_stream_wall_clock_closes_total") == 2
    # A sample that turns up after the wall-clock close is late, not a second window.
    assert agg.add(state, gauge(T0 + 100_000, 1.0)).late_samples == 1


def test_counter_rate_with_reset(registry) -> None:
    agg = make(registry, windows=("1m",))
    values = [(0, 100.0), (10, 110.0), (20, 5.0), (30, 15.0)]  # reset before 20 s
    state, _ = feed(agg, [counter_event(T0 + s * 1000, v) for s, v in values])
    (out,) = agg.close_on_wall_clock(state, T0 + 3_600_000)
    assert out.kind is MetricKind.COUNTER
    # 10 before the reset, 5 counted from 0 at the reset, 10 after: 25 in 30 s.
    assert out.rate_per_second == pytest.approx(25 / 30)
    assert_matches(out, [(T0 + s * 1000, v) for s, v in values], counter=True)


def test_counter_single_sample_has_no_rate(registry) -> None:
    agg = make(registry, windows=("1m",))
    state, _ = feed(agg, [counter_event(T0, 5.0)])
    (out,) = agg.close_on_wall_clock(state, T0 + 3_600_000)
    assert out.rate_per_second is None
    assert out.count == 1


def test_rollup_counter_spans_minute_boundaries_and_resets(registry) -> None:
    agg = make(registry, windows=("1m", "5m"))
    rng = random.Random(3)
    points, value = [], 0.0
    for i in range(30):
        value = rng.uniform(0, 50) if i == 17 else value + rng.uniform(0, 1000)  # reset at 17
        points.append((T0 + i * 10_000, value))
    state, out = feed(agg, [counter_event(ts, v) for ts, v in points])
    out += agg.close_on_wall_clock(state, T0 + 3_600_000)
    index = by_window(out)
    five = index[("h1", "node_network_receive_bytes_total", (("device", "eth0"),), 5 * MIN, T0)]
    assert_matches(five, points, counter=True, exact_sum=False)
    for start, window_points in windows_of(points, MIN).items():
        one = index[("h1", "node_network_receive_bytes_total", (("device", "eth0"),), MIN, start)]
        assert_matches(one, window_points, counter=True)


def test_redelivery_and_restored_state_give_identical_aggregates(registry) -> None:
    rng = random.Random(11)
    events = [gauge(T0 + i * 10_000, rng.uniform(0, 100)) for i in range(60)]
    agg = make(registry)
    _, straight = feed(agg, events)

    # Same events, but the state goes through bytes after every event and some
    # events are delivered again, as after a crash before the offset commit.
    state = agg.new_state("h1", "system")
    replayed: list[WindowAggregate] = []
    for i, event in enumerate(events):
        for again in (events[i - 3 : i] if i % 7 == 0 else []) + [event]:
            replayed += agg.add(state, again).aggregates
            state = FamilyState.from_bytes(state.to_bytes())
    first_seen: dict[tuple, WindowAggregate] = {}
    for a in replayed:  # a window emitted again must be identical
        assert first_seen.setdefault((a.window_size_ms, a.window_start), a) == a
    assert list(first_seen.values()) == straight


def test_out_of_order_within_a_window_gives_the_same_result(registry) -> None:
    agg = make(registry, windows=("1m",))
    times = [0, 10, 20, 30, 40, 50]
    shuffled = [30, 0, 50, 10, 40, 20]
    closer = gauge(T0 + 120_000, 0.0)
    _, a = feed(agg, [gauge(T0 + s * 1000, s * 1.5) for s in times] + [closer])
    _, b = feed(agg, [gauge(T0 + s * 1000, s * 1.5) for s in shuffled] + [closer])
    assert a == b
    assert len(a) == 1


def test_non_finite_values_are_dropped(registry) -> None:
    agg = make(registry, windows=("1m",))
    state = agg.new_state("h1", "system")
    outcome = agg.add(state, gauge(T0, math.nan))
    agg.add(state, gauge(T0 + 1000, 2.0))
    assert outcome.invalid_samples == 1
    (out,) = agg.close_on_wall_clock(state, T0 + 3_600_000)
    assert out.count == 1
    assert out.sum == 2.0


def test_cpu_busy_ratio_per_cpu_and_host(registry) -> None:
    agg = make(registry, windows=("1m",))
    # Over 50 s: cpu0 idle 40 s, user 8 s, system 2 s -> busy 0.2;
    # cpu1 idle 10 s, user 40 s -> busy 0.8. Host: idle 50 of 100 -> 0.5.
    per_second = {("0", "idle"): 0.8, ("0", "user"): 0.16, ("0", "system"): 0.04,
                  ("1", "idle"): 0.2, ("1", "user"): 0.8}  # fmt: skip
    events = []
    for s in range(0, 60, 10):
        samples = tuple(
            Sample("node_cpu_seconds_total", 1000 + rate * s, {"cpu": cpu, "mode": mode},
                   MetricKind.COUNTER)
            for (cpu, mode), rate in per_second.items()
        )  # fmt: skip
        events.append(MetricEvent("h1", "cpu", T0 + s * 1000, samples))
    state, _ = feed(agg, events)
    out = agg.close_on_wall_clock(state, T0 + 3_600_000)
    busy = {tuple(sorted(a.labels.items())): a for a in out if a.metric == CPU_BUSY_RATIO}
    assert busy[(("cpu", "0"),)].mean == pytest.approx(0.2)
    assert busy[(("cpu", "1"),)].mean == pytest.approx(0.8)
    assert busy[()].mean == pytest.approx(0.5)
    assert busy[()].count == 1
    assert busy[()].p99 == busy[()].mean
    modes = {a.labels["mode"]: a.rate_per_second for a in out if a.labels.get("cpu") == "0"
             and a.metric == "node_cpu_seconds_total"}  # fmt: skip
    assert modes == pytest.approx({"idle": 0.8, "user": 0.16, "system": 0.04})


def test_event_of_another_host_is_refused(registry) -> None:
    agg = make(registry)
    state = agg.new_state("h1", "system")
    with pytest.raises(ValueError, match="h2/system"):
        agg.add(state, gauge(T0, 1.0, host="h2"))


def test_ten_second_windows(registry) -> None:
    agg = make(registry, windows=("10s", "1m"), grace_ms=0)
    points = [(T0 + s * 1000, float(s)) for s in range(0, 70, 5)]
    _, out = feed(agg, [gauge(ts, v) for ts, v in points])
    index = by_window(out)
    for start, window_points in windows_of(points, 10_000).items():
        if start + 10_000 <= points[-1][0]:
            assert_matches(index[("h1", "node_load1", (), 10_000, start)], window_points)
    assert_matches(index[("h1", "node_load1", (), MIN, T0)], points[:12], exact_sum=False)


def test_every_aggregate_carries_the_processors_region(registry) -> None:
    cpu = [
        MetricEvent(
            "h1",
            "cpu",
            T0 + s * 1000,
            (
                Sample(
                    "node_cpu_seconds_total",
                    s * 0.5,
                    {"cpu": "0", "mode": "idle"},
                    MetricKind.COUNTER,
                ),
                Sample(
                    "node_cpu_seconds_total",
                    s * 0.5,
                    {"cpu": "0", "mode": "user"},
                    MetricKind.COUNTER,
                ),
            ),
        )
        for s in range(0, 130, 10)
    ]
    _, out = feed(make(registry, region="region-a"), cpu)
    assert CPU_BUSY_RATIO in {a.metric for a in out}
    assert {a.region for a in out} == {"region-a"}
    _, out = feed(make(CollectorRegistry()), cpu)
    assert {a.region for a in out} == {None}

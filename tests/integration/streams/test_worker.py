"""The Faust worker against the real broker: aggregates, restarts after SIGKILL, two workers."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from hoststream.kafka import admin_client
from hoststream.schemas import WindowAggregate
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.cpu import CPU_BUSY_RATIO
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.windows import DEFAULT_WINDOWS
from tests.support.reference import expected, windows_of
from tests.support.streams import (
    MIN,
    closers,
    committed_offsets,
    fleet_events,
    key_of,
    produce,
    read_aggregates,
)

GRACE_S = 10


def t0() -> int:
    # A day ahead, so no window is ever due on wall-clock time during the test:
    # every close comes from event time and the result is exactly reproducible.
    now = time.time_ns() // 1_000_000 + 86_400_000
    return now - now % (5 * MIN)


def in_process(events) -> dict:
    """What the worker must emit: the same core, run here, without Kafka."""
    aggregator = WindowAggregator(
        DEFAULT_WINDOWS, grace_ms=GRACE_S * 1000, metrics=StreamMetrics(CollectorRegistry())
    )
    states: dict = {}
    out: dict = {}
    for event in events:
        state = states.setdefault(
            (event.host, event.family), aggregator.new_state(event.host, event.family)
        )
        for a in aggregator.add(state, event).aggregates:
            out[key_of(a)] = a
    return out


def assert_consistent(records) -> dict:
    """Index by window; a window emitted more than once must be byte-identical, keyed by host."""
    seen: dict = {}
    for key, value, aggregate in records:
        assert key == aggregate.host.encode()
        assert seen.setdefault(key_of(aggregate), value) == value, key_of(aggregate)
    return {key_of(a): a for _, _, a in records}


def assert_same(got: dict, want: dict, *workers) -> None:
    """``got == want``, with a message that tells a missing window from a wrong one."""
    logs = "".join(w.tail() for w in workers)
    missing = sorted(set(want) - set(got))
    assert not missing, f"{len(missing)} of {len(want)} windows missing, e.g. {missing[:3]}\n{logs}"
    extra = sorted(set(got) - set(want))
    assert not extra, f"unexpected windows, e.g. {extra[:3]}"
    wrong = [k for k in want if got[k] != want[k]]
    assert not wrong, f"{len(wrong)} windows differ, e.g. {got[wrong[0]]} != {want[wrong[0]]}"


def check_against_reference(events, got: dict[tuple, WindowAggregate]) -> None:
    series: dict = {}
    for event in events:
        for s in event.samples:
            key = (event.host, s.name, tuple(sorted(s.labels.items())))
            series.setdefault(key, []).append((event.timestamp_ms, s.value, s.kind.value))
    for (host, metric, labels), points in series.items():
        pts = [(ts, v) for ts, v, _ in points]
        for size in (MIN, 5 * MIN):
            for start, window in windows_of(pts, size).items():
                a = got[(host, metric, labels, size, start)]
                ref = expected(window, counter=points[0][2] == "COUNTER")
                assert (a.count, a.min, a.max, a.last) == (ref.count, ref.min, ref.max, ref.last)
                assert a.sum == pytest.approx(ref.sum, rel=1e-12)
                for name, true in ref.quantiles.items():
                    assert abs(getattr(a, name) - true) <= 0.01 * abs(true) + 1e-9
                if ref.rate_per_second is not None:
                    assert a.rate_per_second == pytest.approx(ref.rate_per_second, rel=1e-9)
    busy = [a for a in got.values() if a.metric == CPU_BUSY_RATIO]
    assert busy
    assert all(a.mean == pytest.approx(0.3) for a in busy)


def test_worker_emits_reference_aggregates(stream_settings, start_worker) -> None:
    base = t0()
    events = fleet_events(base, minutes=12)
    produce(stream_settings, events + closers(base + 25 * MIN))
    want = in_process(events + closers(base + 25 * MIN))

    worker = start_worker("--grace", str(GRACE_S), "--session-timeout", "10")
    records = read_aggregates(stream_settings, DEFAULT_WINDOWS, len(want), [worker])
    got = assert_consistent(records)
    assert_same(got, want, worker)
    check_against_reference(events, got)


def test_sigkill_and_restart_give_identical_aggregates(
    stream_settings, start_worker, unique
) -> None:
    app_id = f"{unique}-streams"
    base = t0()
    events = fleet_events(base, minutes=12)
    half = len(events) // 2
    produce(stream_settings, events[:half])
    want = in_process(events + closers(base + 25 * MIN))

    first = start_worker("--grace", str(GRACE_S), "--session-timeout", "10")
    early = read_aggregates(stream_settings, DEFAULT_WINDOWS, 30, [first], timeout_s=120)
    assert len(early) >= 30, first.tail()
    # Wait for an offset commit, so the restarted worker resumes from the
    # changelog rather than reprocessing everything from the beginning.
    deadline = time.monotonic() + 30
    while committed_offsets(stream_settings, app_id, ["cpu"]) == 0:
        assert time.monotonic() < deadline, first.tail()
        time.sleep(0.5)
    first.kill()  # no commit, no flush: the changelog and offsets are wherever they were

    produce(stream_settings, events[half:] + closers(base + 25 * MIN))
    second = start_worker("--grace", str(GRACE_S), "--session-timeout", "10")
    records = read_aggregates(stream_settings, DEFAULT_WINDOWS, len(want), [second])
    assert_same(assert_consistent(records), want, second)


def test_two_workers_in_one_group_emit_what_one_does(stream_settings, start_worker, unique) -> None:
    app_id = f"{unique}-streams"
    base = t0()
    events = fleet_events(base, minutes=7) + closers(base + 20 * MIN)
    want = in_process(events)
    workers = [start_worker("--grace", str(GRACE_S), "--session-timeout", "10") for _ in range(2)]
    produce(stream_settings, events)
    records = read_aggregates(stream_settings, DEFAULT_WINDOWS, len(want), workers)
    assert_same(assert_consistent(records), want, *workers)
    admin = admin_client(stream_settings)  # held: its futures die with it
    (group,) = admin.describe_consumer_groups([app_id], request_timeout=20).values()
    members = group.result(timeout=30).members
    assert len(members) == 2  # both took part, so each had a share of the partitions

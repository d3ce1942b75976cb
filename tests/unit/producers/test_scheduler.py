"""Aligned ticks on a fake clock: alignment, no drift, no late or doubled ticks after an overrun.

The clock is a fake (a test double): ``sleep`` advances it exactly.
"""

from __future__ import annotations

import pytest

from hoststream.producers.agent import HostEvents
from hoststream.producers.scheduler import AlignedTicker
from hoststream.schemas.records import MetricKind, Sample
from tests.support.doubles.clock import FakeClock


def take(ticker: AlignedTicker, n: int, work: float = 0.0, clock: FakeClock | None = None):
    ticks = []
    for tick in ticker:
        ticks.append(tick)
        if clock is not None:
            clock.now += work
        if len(ticks) == n:
            break
    return ticks


def test_ticks_fall_on_interval_boundaries() -> None:
    clock = FakeClock(1_700_000_003.25)
    ticker = AlignedTicker(10.0, clock=clock, sleep=clock.sleep)
    ticks = take(ticker, 3)
    assert [t.timestamp_ms for t in ticks] == [
        1_700_000_010_000,
        1_700_000_020_000,
        1_700_000_030_000,
    ]


def test_the_first_and_later_ticks_fire_at_their_aligned_instant() -> None:
    clock = FakeClock(1_796_126_494.574)  # mid-interval, as a process starts
    ticker = AlignedTicker(2.0, clock=clock, sleep=clock.sleep)
    fired = []
    for tick in ticker:
        fired.append((clock.now, tick.timestamp_ms))
        clock.now += 0.3  # the collection's own work
        if len(fired) == 3:
            break
    assert fired == [
        (1_796_126_496.0, 1_796_126_496_000),
        (1_796_126_498.0, 1_796_126_498_000),
        (1_796_126_500.0, 1_796_126_500_000),
    ]


class SlowCollector:
    """A collector double whose read takes ``seconds`` of the fake clock."""

    def __init__(self, family: str, clock: FakeClock, seconds: float) -> None:
        self.family = family
        self._clock = clock
        self._seconds = seconds

    def collect(self) -> list[Sample]:
        value = self._clock.now
        self._clock.now += self._seconds
        return [Sample("node_time_seconds", value, {}, MetricKind.GAUGE)]


def test_real_events_are_stamped_with_the_instant_each_family_was_read() -> None:
    clock = FakeClock(1_796_126_494.574)
    source = HostEvents(
        [SlowCollector("cpu", clock, 0.0042), SlowCollector("memory", clock, 0.0011)],
        "h1",
        {},
        clock=clock,
    )
    ticker = AlignedTicker(2.0, clock=clock, sleep=clock.sleep)
    stamps = []
    for tick in ticker:
        events = list(source.events(tick.timestamp_ms, 2000))
        stamps.append([(e.family, e.timestamp_ms) for e in events])
        # The stamp is the time the values were read: the sample holds that time too.
        assert all(e.timestamp_ms == round(e.samples[0].value * 1000) for e in events)
        if len(stamps) == 2:
            break
    assert stamps == [
        [("cpu", 1_796_126_496_000), ("memory", 1_796_126_496_004)],
        [("cpu", 1_796_126_498_000), ("memory", 1_796_126_498_004)],
    ]


def test_no_drift_over_hours() -> None:
    clock = FakeClock(1_700_000_000.0)
    ticker = AlignedTicker(10.0, clock=clock, sleep=clock.sleep)
    # Each collection takes 0.37 s; 8 hours of ticks must still be exactly 10 s apart.
    ticks = take(ticker, 2880, work=0.37, clock=clock)
    assert ticks[-1].timestamp_ms - ticks[0].timestamp_ms == 2879 * 10_000
    assert all(t.timestamp_ms % 10_000 == 0 for t in ticks)
    assert all(t.skipped == 0 for t in ticks)


def test_an_overrun_skips_missed_ticks_and_waits_for_the_next_aligned_one() -> None:
    clock = FakeClock(1_000.0)
    ticker = AlignedTicker(10.0, clock=clock, sleep=clock.sleep)
    iterator = iter(ticker)
    first = next(iterator)
    assert first.timestamp_ms == 1_000_000
    clock.now += 35.0  # the collection took three and a half intervals
    second = next(iterator)
    assert (second.timestamp_ms, clock.now) == (1_040_000, 1_040.0)
    assert second.skipped == 3
    third = next(iterator)
    assert (third.timestamp_ms, clock.now) == (1_050_000, 1_050.0)
    assert third.skipped == 0


def test_speedup_runs_simulated_time_faster() -> None:
    clock = FakeClock(500.0)
    ticker = AlignedTicker(10.0, speedup=100.0, clock=clock, sleep=clock.sleep)
    ticks = take(ticker, 11)
    assert ticks[-1].timestamp_ms - ticks[0].timestamp_ms == 100_000
    assert clock.now - 500.0 == pytest.approx(1.0)


def test_stop_ends_iteration() -> None:
    clock = FakeClock(0.0)
    stopped = {"flag": False}
    ticker = AlignedTicker(1.0, clock=clock, sleep=clock.sleep, stopped=lambda: stopped["flag"])
    iterator = iter(ticker)
    next(iterator)
    stopped["flag"] = True
    assert list(iterator) == []


def test_rejects_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        AlignedTicker(0.0)


def test_simulated_fleets_keep_the_ticks_aligned_instants_as_stamps() -> None:
    from hoststream.producers.simulation import SimulatedFleet

    clock = FakeClock(503.25)
    ticker = AlignedTicker(10.0, speedup=10.0, clock=clock, sleep=clock.sleep)
    fleet = SimulatedFleet(3, seed=7)
    ticks = take(ticker, 2)
    assert clock.now == pytest.approx(503.25 + (510.0 - 503.25) / 10 + 1.0)
    for tick in ticks:
        stamps = {e.timestamp_ms for e in fleet.events(tick.timestamp_ms, 10_000)}
        assert stamps == {tick.timestamp_ms}
    assert [t.timestamp_ms for t in ticks] == [510_000, 520_000]

"""Aligned ticks on a fake clock: alignment, no drift, no doubled ticks after an overrun."""

from __future__ import annotations

import pytest

from hoststream.producers.scheduler import AlignedTicker


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


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


def test_no_drift_over_hours() -> None:
    clock = FakeClock(1_700_000_000.0)
    ticker = AlignedTicker(10.0, clock=clock, sleep=clock.sleep)
    # Each collection takes 0.37 s; 8 hours of ticks must still be exactly 10 s apart.
    ticks = take(ticker, 2880, work=0.37, clock=clock)
    assert ticks[-1].timestamp_ms - ticks[0].timestamp_ms == 2879 * 10_000
    assert all(t.timestamp_ms % 10_000 == 0 for t in ticks)
    assert all(t.skipped == 0 for t in ticks)


def test_an_overrun_skips_missed_ticks_instead_of_doubling() -> None:
    clock = FakeClock(1_000.0)
    ticker = AlignedTicker(10.0, clock=clock, sleep=clock.sleep)
    iterator = iter(ticker)
    first = next(iterator)
    assert first.timestamp_ms == 1_000_000
    clock.now += 35.0  # the collection took three and a half intervals
    second = next(iterator)
    assert second.timestamp_ms == 1_030_000
    assert second.skipped == 2
    third = next(iterator)
    assert third.timestamp_ms == 1_040_000
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

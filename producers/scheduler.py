"""Collection ticks aligned to the wall clock.

An interval of 10 s fires at :00, :10, :20 ... Each tick is computed from the
clock, not by adding the interval to the last tick, so nothing drifts over
hours; a collection that overruns skips the ticks it missed and waits for the
next aligned instant instead of firing late or firing them back to back.

The tick's ``timestamp_ms`` is the aligned instant it was scheduled for. A real
host stamps its events with the instant each family was actually read (see
:class:`hoststream.producers.agent.HostEvents`); a simulated fleet stamps its
events with the tick's instant, so its output stays deterministic.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["AlignedTicker", "Tick"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tick:
    """One collection instant."""

    #: The aligned instant the tick was scheduled for, UTC milliseconds
    #: (simulated time when the ticker runs faster than the wall clock).
    timestamp_ms: int
    #: Ticks skipped because the previous collection overran.
    skipped: int = 0


@dataclass
class AlignedTicker:
    """Yields aligned ticks until stopped.

    Args:
        interval_s: the collection interval.
        speedup: simulated time runs this many times faster than the wall clock
            (1 for real collection); tick timestamps still advance by ``interval_s``.
        clock: wall-clock seconds (``time.time``); replaced in tests.
        sleep: waits a number of seconds, returning early when stopped.
        stopped: whether to end the iteration.

    With ``speedup`` 1 simulated time is the wall clock, so every tick is
    yielded at its aligned instant (after sleeping until then). With a larger
    speedup, simulated time starts at the next aligned instant after now and
    that first tick fires once the scaled wait has passed.
    """

    interval_s: float
    speedup: float = 1.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    stopped: Callable[[], bool] = field(default=lambda: False)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.speedup <= 0:
            raise ValueError("interval and speedup must be positive")
        now = self.clock()
        # Simulated time starts at the next aligned instant after now, and
        # reaches it after (that instant - now) / speedup of wall time: with
        # speedup 1 both clocks are the same and ticks fire on aligned instants.
        self._origin_sim = self._align_up(now)
        self._origin_wall = now + (self._origin_sim - now) / self.speedup

    def _align_up(self, t: float) -> float:
        return math.ceil(t / self.interval_s) * self.interval_s

    def _sim_now(self) -> float:
        return self._origin_sim + (self.clock() - self._origin_wall) * self.speedup

    def _wall_for(self, sim_t: float) -> float:
        return self._origin_wall + (sim_t - self._origin_sim) / self.speedup

    def __iter__(self) -> Iterator[Tick]:
        next_sim = self._origin_sim
        skipped = 0
        while not self.stopped():
            # A loop, not one sleep: a sleep timed on another clock may end a
            # hair early, and the tick must not fire before its instant.
            while (wait := self._wall_for(next_sim) - self.clock()) > 0:
                self.sleep(wait)
                if self.stopped():
                    return
            yield Tick(round(next_sim * 1000), skipped)
            due = next_sim + self.interval_s
            now = self._sim_now()
            if now > due:
                # The collection overran the next tick: skip every tick already
                # past and wait for the next aligned one, so no tick fires late.
                upcoming = self._align_up(now)
                skipped = round((upcoming - due) / self.interval_s)
                log.warning(
                    "collection overran: skipped %d tick(s) of %.3gs", skipped, self.interval_s
                )
                due = upcoming
            else:
                skipped = 0
            next_sim = due

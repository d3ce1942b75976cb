"""Collection ticks aligned to the wall clock.

An interval of 10 s fires at :00, :10, :20 ... Each tick is computed from the
clock, not by adding the interval to the last tick, so nothing drifts over
hours; a collection that overruns skips the ticks it missed instead of firing
them back to back.
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

    #: The aligned instant the collection stands for, UTC milliseconds.
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
    """

    interval_s: float
    speedup: float = 1.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    stopped: Callable[[], bool] = field(default=lambda: False)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.speedup <= 0:
            raise ValueError("interval and speedup must be positive")
        self._origin_wall = self.clock()
        # Simulated time starts at the next aligned instant after now.
        self._origin_sim = self._align_up(self._origin_wall)

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
            wait = self._wall_for(next_sim) - self.clock()
            if wait > 0:
                self.sleep(wait)
                if self.stopped():
                    return
            yield Tick(round(next_sim * 1000), skipped)
            due = next_sim + self.interval_s
            now = self._sim_now()
            if now >= due + self.interval_s:
                # The collection overran one or more whole intervals: skip to
                # the latest due tick rather than firing the missed ones at once.
                latest = math.floor(now / self.interval_s) * self.interval_s
                skipped = round((latest - due) / self.interval_s)
                log.warning(
                    "collection overran: skipped %d tick(s) of %.3gs", skipped, self.interval_s
                )
                due = latest
            else:
                skipped = 0
            next_sim = due

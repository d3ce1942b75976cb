"""How busy a simulated host is over time, and the busy-seconds it has accumulated since boot.

Every counter of a simulated host is ``a * uptime + c * busy`` for constants
``a, c >= 0`` (idle time uses ``uptime - c * busy``), where ``busy`` is the
integral of the host's busy fraction since its last boot. So all counters
reset together at a reboot and grow monotonically in between, as long as the
busy fraction stays inside [0, :data:`MAX_LEVEL`]; the constants below are
chosen so that it does.

The busy fraction is the sum of:

- a daily cycle (a sine peaking at the host's local afternoon, or night for
  batch hosts), integrated in closed form;
- "episodes": with some probability per hour, a stretch of 2 to 30 minutes at
  :data:`EPISODE_LEVEL` (a deploy, a batch job, a traffic spike) instead of the
  daily cycle; their areas are summed since boot once and memoised;
- jitter on two time scales (10 s and 5 min), each a piecewise-linear function
  through hashed points, so its integral is known at any instant and its
  derivative is bounded.

Reboots: each host has a reboot period; in each period it reboots once at a
hashed instant. Everything here is a pure function of (key, time), memoised.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any

from hoststream.producers.simulation.hashing import derive, unit, unit_array, units

__all__ = [
    "EPISODE_LEVEL",
    "FLOOR",
    "LOAD_WINDOWS_S",
    "MAX_LEVEL",
    "Activity",
    "ActivityParams",
    "jitter_of_many",
]

DAY_S = 86_400.0
_OMEGA = 2.0 * math.pi / DAY_S
_SLOT_S = 3600.0  # episodes: at most one per hour slot
_EPISODE_MIN_S = 120.0
_EPISODE_MAX_S = 1800.0

#: The busy fraction never drops below this before jitter.
FLOOR = 0.12
#: The busy fraction during an episode, before jitter.
EPISODE_LEVEL = 0.82
# Jitter: (grid step in seconds, amplitude as a fraction of busy time per second).
_JITTER = ((10.0, 0.04), (300.0, 0.06))
_JITTER_MAX = sum(amp for _, amp in _JITTER)
# Grid points remembered per jitter scale: a few ticks' worth.
_GRID_MEMO = 64
#: Upper bound of the busy fraction, jitter included (checked in ActivityParams).
MAX_LEVEL = 0.92
#: The windows of the load averages, seconds: a tick asks for the busy time this long ago.
LOAD_WINDOWS_S = (60.0, 300.0, 900.0)
# Hour slots and reboot periods remembered per host: a few ticks' worth.
_MEMO = 16


@dataclass(frozen=True, slots=True)
class ActivityParams:
    """The shape of one host's busy fraction."""

    #: Mean of the daily cycle above :data:`FLOOR`.
    base: float
    #: Relative amplitude of the daily cycle (0..1).
    amplitude: float
    #: Hour of the day (UTC, 0..24) when the daily cycle peaks.
    peak_hour_utc: float
    #: Probability that an hour slot holds an episode.
    episode_probability: float
    #: Seconds between reboots (one reboot at a hashed instant in each period).
    reboot_period_s: float

    def __post_init__(self) -> None:
        low = FLOOR + self.base * (1.0 - self.amplitude) - _JITTER_MAX
        high = max(FLOOR + self.base * (1.0 + self.amplitude), EPISODE_LEVEL) + _JITTER_MAX
        if low < 0.0 or high > MAX_LEVEL + 1e-12:
            raise ValueError(f"busy fraction would leave [0, {MAX_LEVEL}]: {self}")

    @property
    def mean_level(self) -> float:
        """The long-run busy fraction without episodes."""
        return FLOOR + self.base


class Activity:
    """One host's busy fraction, boot instants and busy-seconds since boot.

    Args:
        key: the host's 64-bit key (from the fleet seed and host index).
        params: the shape of the busy fraction.
    """

    def __init__(self, key: int, params: ActivityParams) -> None:
        self.params = params
        self._episode_key = derive(key, 1)
        self._boot_key = derive(key, 2)
        self._jitter_keys = tuple(derive(key, 3, i) for i in range(len(_JITTER)))
        self._reboot_phase = unit(derive(key, 4), 0) * params.reboot_period_s
        self._mean = params.mean_level
        self._ba = params.base * params.amplitude
        self._phi = _OMEGA * params.peak_hour_utc * 3600.0 - math.pi / 2.0
        # Memo: episode areas summed hour by hour since one boot.
        self._prefix_boot = math.nan
        self._prefix_first_slot = 0
        self._prefix = array("d", [0.0])
        # Memo: the jitter's grid points, per scale. A tick asks for points at
        # t, t - 60, t - 300 and t - 900 (the load averages), and the next tick
        # for most of the same ones: each point is hashed about once.
        self._grid_points: tuple[dict[int, float], ...] = tuple({} for _ in _JITTER)
        # Memo: (boot, smooth integral at boot, jitter at boot).
        self._at_boot = (math.nan, 0.0, 0.0)
        # Memo: the episodes of the last hour slots asked, and the reboots of
        # the last periods: every tick asks for the same few (its instant and
        # the load averages' windows), each a hash.
        self._episodes: dict[int, tuple[float, float] | None] = {}
        self._reboots: dict[int, float] = {}

    # --- reboots --------------------------------------------------------------

    def _reboot_at(self, period_index: int) -> float:
        boot = self._reboots.get(period_index)
        if boot is None:
            if len(self._reboots) >= _MEMO:
                self._reboots.clear()
            boot = self._reboots[period_index] = self._hashed_reboot_at(period_index)
        return boot

    def _hashed_reboot_at(self, period_index: int) -> float:
        period = self.params.reboot_period_s
        start = self._reboot_phase + period_index * period
        # Keep the reboot away from the period's edges; whole seconds, like btime.
        return float(math.floor(start + (0.05 + 0.9 * unit(self._boot_key, period_index)) * period))

    def boot_time(self, t: float) -> float:
        """The last boot at or before ``t`` (seconds since the epoch)."""
        index = math.floor((t - self._reboot_phase) / self.params.reboot_period_s)
        boot = self._reboot_at(index)
        return boot if boot <= t else self._reboot_at(index - 1)

    # --- the busy fraction ------------------------------------------------------

    def _smooth_integral(self, t: float) -> float:
        return self._mean * t - self._ba / _OMEGA * math.cos(_OMEGA * t - self._phi)

    def _episode(self, slot: int) -> tuple[float, float] | None:
        """The episode of hour slot ``slot`` as (start, end), if it has one."""
        if slot in self._episodes:
            return self._episodes[slot]
        if len(self._episodes) >= _MEMO:
            self._episodes.clear()
        episode = self._episodes[slot] = self._hashed_episode(slot)
        return episode

    def _hashed_episode(self, slot: int) -> tuple[float, float] | None:
        chance, offset, length, _ = units(self._episode_key, slot)
        if chance >= self.params.episode_probability:
            return None
        start = slot * _SLOT_S + offset * (_SLOT_S - _EPISODE_MIN_S)
        end = min(
            start + _EPISODE_MIN_S + length * (_EPISODE_MAX_S - _EPISODE_MIN_S),
            (slot + 1) * _SLOT_S,
        )
        return start, end

    def _episode_area(self, slot: int, lo: float, hi: float) -> float:
        """Extra busy-seconds the episode of ``slot`` adds within [lo, hi]."""
        episode = self._episode(slot)
        if episode is None:
            return 0.0
        a, b = max(episode[0], lo), min(episode[1], hi)
        if b <= a:
            return 0.0
        return EPISODE_LEVEL * (b - a) - (self._smooth_integral(b) - self._smooth_integral(a))

    def _episodes_since(self, boot: float, t: float) -> float:
        first = math.floor(boot / _SLOT_S)
        last = math.floor(t / _SLOT_S)
        if boot != self._prefix_boot:
            self._prefix_boot = boot
            self._prefix_first_slot = first
            self._prefix = array("d", [0.0])
        prefix = self._prefix
        while len(prefix) <= last - first:
            slot = first + len(prefix) - 1
            prefix.append(prefix[-1] + self._episode_area(slot, boot, math.inf))
        return prefix[last - first] + self._episode_area(last, boot, t)

    def _jitter(self, t: float) -> float:
        total = 0.0
        for (step, amp), key, points in zip(
            _JITTER, self._jitter_keys, self._grid_points, strict=True
        ):
            pos = t / step
            k = math.floor(pos)
            h0 = points.get(k)
            if h0 is None:
                h0 = points[k] = unit(key, k)
            h1 = points.get(k + 1)
            if h1 is None:
                h1 = points[k + 1] = unit(key, k + 1)
            total += amp * step * (h0 + (h1 - h0) * (pos - k))
            if len(points) > _GRID_MEMO:
                points.clear()
        return total

    def level(self, t: float) -> float:
        """The busy fraction at ``t`` without jitter: for gauges, which add their own noise."""
        episode = self._episode(math.floor(t / _SLOT_S))
        if episode is not None and episode[0] <= t < episode[1]:
            return EPISODE_LEVEL
        return self._mean + self._ba * math.sin(_OMEGA * t - self._phi)

    @property
    def jitter_keys(self) -> tuple[int, ...]:
        """The keys of the jitter's scales (for :func:`jitter_of_many`)."""
        return self._jitter_keys

    def busy_since_boot(self, boot: float, t: float, jitter_at_t: float | None = None) -> float:
        """Busy-seconds (per CPU, averaged) from ``boot`` to ``t``; 0 at ``t == boot``.

        Args:
            jitter_at_t: the jitter's integral at ``t`` when it is known already
                (:func:`jitter_of_many` computes it for a whole fleet at once).
        """
        if t <= boot:
            return 0.0
        at_boot = self._at_boot
        if at_boot[0] != boot:
            # Every tick until the next reboot subtracts the same two terms.
            at_boot = self._at_boot = (boot, self._smooth_integral(boot), self._jitter(boot))
        return (
            self._smooth_integral(t)
            - at_boot[1]
            + self._episodes_since(boot, t)
            + (self._jitter(t) if jitter_at_t is None else jitter_at_t)
            - at_boot[2]
        )


def jitter_of_many(keys: tuple[Any, ...], t: float) -> Any:
    """The jitter's integral at ``t`` for many hosts at once: ``Activity._jitter`` vectorised.

    Args:
        keys: per scale of the jitter, the hosts' keys as a uint64 NumPy array.

    Returns:
        A float64 array, equal bit for bit to each host's ``_jitter(t)``: the
        same operations in the same order, on arrays.
    """
    total: Any = 0.0
    for (step, amp), scale_keys in zip(_JITTER, keys, strict=True):
        pos = t / step
        k = math.floor(pos)
        h0 = unit_array(scale_keys, k)
        h1 = unit_array(scale_keys, k + 1)
        total = total + amp * step * (h0 + (h1 - h0) * (pos - k))
    return total

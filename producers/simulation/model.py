"""One simulated host's samples, family by family, at any instant.

Counters are affine in two quantities the host's :class:`Activity` gives for
the instant: seconds since boot and busy-seconds since boot. Each series has
its constants, computed once here, so a tick costs a multiply-add per sample.
Gauges are levels derived from the host's current busy fraction, with noise
hashed from the instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hoststream.producers.collectors.names import (
    BOOT_TIME,
    CONTEXT_SWITCHES,
    CPU_MODES,
    CPU_SECONDS,
    DISKSTATS_COUNTERS,
    FILESYSTEM_GAUGES,
    FORKS,
    INTERRUPTS,
    LOAD_AVERAGES,
    MEMINFO_FIELDS,
    NETDEV_COUNTERS,
    PROCESS_STATES_ALWAYS,
    PROCESSES_STATE,
    PROCS_BLOCKED,
    PROCS_RUNNING,
    UNAME_INFO,
    meminfo_metric,
)
from hoststream.producers.simulation.activity import LOAD_WINDOWS_S, MAX_LEVEL, Activity
from hoststream.producers.simulation.hashing import derive, units
from hoststream.producers.simulation.profile import HostProfile
from hoststream.schemas.records import FAMILIES, MetricKind, Sample

__all__ = ["HostModel"]

_COUNTER = MetricKind.COUNTER
_GAUGE = MetricKind.GAUGE
_NO_LABELS: dict[str, str] = {}
# Share of activity-driven counters that grows regardless of load (cron,
# heartbeats, replication); the rest follows the busy fraction.
_STEADY = 0.3
_MEMINFO_NAMES = tuple(meminfo_metric(f) for f in MEMINFO_FIELDS)

# Label dicts are shared by every host and tick: ~1000 hosts x 200 series would
# otherwise hold a dict each. Samples never mutate their labels.
_label_cache: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}


def _labels(**labels: str) -> dict[str, str]:
    key = tuple(labels.items())
    cached = _label_cache.get(key)
    if cached is None:
        cached = _label_cache[key] = labels
    return cached


def _no_values(_tick: _Tick) -> list[float]:
    return []


def _kb(value: float) -> int:
    # /proc/meminfo counts in kB.
    return int(value) >> 10 << 10


def memory_values(
    total: Any,
    leak_per_day: Any,
    app_memory: Any,
    page_cache: Any,
    swap: Any,
    *,
    uptime: Any,
    level: Any,
    n1: Any,
    n2: Any,
    minimum: Callable[[Any, Any], Any],
    maximum: Callable[[Any, Any], Any],
    kb: Callable[[Any], Any],
) -> list[Any]:
    """The memory family's 9 values, in the order of its series.

    One formula for one host (floats, with Python's ``min``, ``max`` and
    :func:`_kb`) and for a batch of hosts in columns (NumPy arrays, with
    ``np.minimum``, ``np.maximum`` and the columns' ``_kb``): the same IEEE
    operations in the same order, so the values are the same, bit for bit.
    The host's constants are those of :meth:`HostModel.memory_constants`;
    ``n1`` and ``n2`` are the memory noise's units at the tick.
    """
    leak = leak_per_day * uptime / 86_400.0
    app = total * minimum(0.9, app_memory + 0.12 * level + 0.01 * (n1 - 0.5) + leak)
    slab = total * 0.03
    reclaimable = slab * 0.6
    buffers = total * 0.005 * (1.0 + 0.2 * n2)
    shmem = total * 0.01
    # The page cache fills during the first day of uptime, and yields to applications.
    wanted_cache = total * page_cache * minimum(1.0, 0.2 + uptime / 86_400.0)
    cache = maximum(shmem, minimum(wanted_cache, total * 0.98 - app - slab - buffers))
    free = maximum(0.0, total - app - slab - buffers - cache)
    available = minimum(total, free + 0.9 * (cache + buffers - shmem) + 0.9 * reclaimable)
    swap_used = swap * minimum(0.9, 0.01 + maximum(0.0, app / total - 0.75) * 4.0)
    return [
        total,
        kb(free),
        kb(available),
        kb(buffers),
        kb(cache),
        kb(reclaimable),
        kb(shmem),
        swap,
        kb(swap - swap_used),
    ]


class _Tick:
    """What every family of one host needs at one instant, computed once."""

    __slots__ = ("boot", "busy", "jitters", "level", "shaped", "t", "uptime")

    def __init__(
        self, activity: Activity, t: float, jitters: tuple[float, ...] | None = None
    ) -> None:
        self.t = t
        #: The jitter's integral at t and at t minus each load window, if known.
        self.jitters = jitters
        self.boot = activity.boot_time(t)
        self.uptime = t - self.boot
        self.busy = activity.busy_since_boot(self.boot, t, None if jitters is None else jitters[0])
        self.level = activity.level(t)
        mean = activity.params.mean_level
        # "Work done" since boot in mean-rate seconds: grows like uptime on an
        # average day, faster at peaks and in episodes.
        self.shaped = _STEADY * self.uptime + (1.0 - _STEADY) * self.busy / mean


#: One series of a host: (name, labels, kind); its value changes every tick.
Series = tuple[str, dict[str, str], MetricKind]


class HostModel:
    """Samples of one simulated host.

    A host's series (names, labels, kinds) never change, so each family's are
    listed once (:meth:`series`), and a tick computes only their values
    (:meth:`values`), in the same order: what a producer that writes events by
    their learned layout needs, without a :class:`Sample` per value.

    Args:
        profile: the host (see :func:`~producers.simulation.profile.make_profile`).
    """

    def __init__(self, profile: HostProfile) -> None:
        self.profile = profile
        self.activity = Activity(profile.key, profile.activity)
        self._noise_keys = {f: derive(profile.key, 10, i) for i, f in enumerate(FAMILIES)}
        self._tick: _Tick | None = None
        cpu_rows = self._cpu_table()
        disk_rows = self._diskstats_table()
        net_rows = self._netdev_table()
        # The per-series constants as arrays: a tick's counters are a few
        # vector operations (the same IEEE operations, so the same values as
        # computing them one by one).
        self._cpu_a = np.array([a for _, a, _ in cpu_rows], dtype=np.float64)
        self._cpu_c = np.array([c for _, _, c in cpu_rows], dtype=np.float64)
        self._disk_k = np.array([k for _, _, k, _ in disk_rows], dtype=np.float64)
        self._disk_quantum = np.array([q for _, _, _, q in disk_rows], dtype=np.float64)
        self._net_k = np.array([k for _, _, k in net_rows], dtype=np.float64)
        # What node_exporter dashboards pick a host by (job, nodename, instance).
        uname_labels = {
            "domainname": "(none)",
            "machine": "x86_64",
            "nodename": profile.host_id,
            "release": "6.1.0-28-amd64",
            "sysname": "Linux",
            "version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1",
        }
        error, size_name, free_name, avail_name, files_name, files_free_name, ro_name = (
            FILESYSTEM_GAUGES
        )
        filesystem_series: list[Series] = []
        for fs in profile.filesystems:
            labels = _labels(device=fs.device, fstype=fs.fstype, mountpoint=fs.mountpoint)
            filesystem_series += [
                (name, labels, _GAUGE)
                for name in (
                    error,
                    size_name,
                    free_name,
                    avail_name,
                    files_name,
                    files_free_name,
                    ro_name,
                )
            ]
        self._series: dict[str, tuple[Series, ...]] = {
            "cpu": tuple((CPU_SECONDS, labels, _COUNTER) for labels, _, _ in cpu_rows),
            "memory": tuple((name, _NO_LABELS, _GAUGE) for name in _MEMINFO_NAMES),
            "disk": (
                *filesystem_series,
                *((name, labels, _COUNTER) for name, labels, _, _ in disk_rows),
            ),
            "network": tuple((name, labels, _COUNTER) for name, labels, _ in net_rows),
            "system": (
                *((name, _NO_LABELS, _GAUGE) for name in LOAD_AVERAGES),
                (BOOT_TIME, _NO_LABELS, _GAUGE),
                (CONTEXT_SWITCHES, _NO_LABELS, _COUNTER),
                (INTERRUPTS, _NO_LABELS, _COUNTER),
                (FORKS, _NO_LABELS, _COUNTER),
                (PROCS_RUNNING, _NO_LABELS, _GAUGE),
                (PROCS_BLOCKED, _NO_LABELS, _GAUGE),
                (UNAME_INFO, uname_labels, _GAUGE),
                *(
                    (PROCESSES_STATE, _labels(state=state), _GAUGE)
                    for state in PROCESS_STATES_ALWAYS
                ),
            ),
        }
        self._builders: dict[str, Callable[[_Tick], list[float]]] = {
            "cpu": self._cpu,
            "memory": self._memory,
            "disk": self._disk,
            "network": self._network,
            "system": self._system,
        }
        self._scalars: dict[str, Callable[[_Tick], list[float]]] = {
            "cpu": _no_values,
            "memory": self._memory,
            "disk": self._filesystems,
            "network": _no_values,
            "system": self._system,
        }
        self._columns: dict[str, tuple[str, Any, Any]] = {
            "cpu": ("cpu", self._cpu_a, self._cpu_c),
            "disk": ("disk", self._disk_k, self._disk_quantum),
            "network": ("network", self._net_k, None),
        }

    def series(self, family: str) -> tuple[Series, ...]:
        """The series of ``family``: (name, labels, kind), in the order of :meth:`values`."""
        return self._series[family]

    def values(self, family: str, t: float) -> list[float]:
        """The values of ``family``'s series at ``t`` (seconds since the epoch)."""
        tick = self._tick
        if tick is None or tick.t != t:
            tick = self._tick = _Tick(self.activity, t)
        return self._builders[family](tick)

    def at(self, t: float, jitters: tuple[float, ...]) -> None:
        """Start the tick at ``t`` with the jitter already computed for the fleet.

        Args:
            jitters: the jitter's integral at ``t`` and at ``t`` minus each of
                :data:`~producers.simulation.activity.LOAD_WINDOWS_S`.
        """
        tick = self._tick
        if tick is None or tick.t != t:
            self._tick = _Tick(self.activity, t, jitters)

    # --- a fleet's tick in columns ------------------------------------------------
    #
    # Each family's values are some computed host by host in Python (gauges,
    # filesystems) followed by counters that are each a constant times one of
    # the tick's terms: a fleet computes those for many hosts in one NumPy
    # operation per kind (``producers.simulation.columns``). The operations are
    # the same as :meth:`values`' element by element, so the values are too.

    def scalar_values(self, family: str) -> list[float]:
        """The values of ``family`` before its counter column, at the tick :meth:`at` started."""
        tick = self._tick
        if tick is None:
            raise RuntimeError("no tick started: call at() first")
        return self._scalars[family](tick)

    def scalar_builders(
        self, families: Sequence[str], *, in_columns: Sequence[str] = ()
    ) -> list[Callable[[_Tick], list[float]]]:
        """What :meth:`scalar_values` calls for each of ``families`` that has scalar values.

        For a batch: :meth:`batch_row` runs them in one call per host.
        ``in_columns``: families whose scalar values the batch computes itself.
        """
        builders = [self._scalars[family] for family in families if family not in in_columns]
        return [builder for builder in builders if builder is not _no_values]

    def disk_noise_key(self) -> int:
        """The key of the noise :meth:`_filesystems` adds, for a batch in columns."""
        return self._noise_keys["disk"]

    def memory_constants(self) -> tuple[int, float, float, float, int, int]:
        """What :meth:`_memory` reads of the host: (memory bytes, leak per day, app
        memory, page cache, swap bytes, the memory noise's key), for a batch in columns."""
        p = self.profile
        return (
            p.memory_bytes,
            p.leak_per_day,
            p.app_memory,
            p.page_cache,
            p.swap_bytes,
            self._noise_keys["memory"],
        )

    def batch_row(
        self, builders: Sequence[Callable[[_Tick], list[float]]], scalars: list[float]
    ) -> tuple[float, float, float, float]:
        """Append the tick's scalar values of ``builders``' families to ``scalars``; the terms.

        The same values as :meth:`scalar_values` family after family, and
        :meth:`tick_terms` and the level, at the tick :meth:`at` started.
        """
        tick = self._tick
        if tick is None:
            raise RuntimeError("no tick started: call at() first")
        for builder in builders:
            scalars += builder(tick)
        return tick.uptime, tick.busy, tick.shaped, tick.level

    def counter_column(self, family: str) -> tuple[str, Any, Any] | None:
        """``family``'s counters after its scalar values: (kind, k1, k2), or None.

        kind ``cpu``: ``k1 * uptime + k2 * busy``; ``disk``:
        ``floor(shaped * k1) * k2``; ``network``: ``trunc(shaped * k1)`` (k2 None).
        """
        return self._columns.get(family)

    def tick_instant(self) -> float:
        """The instant of the tick :meth:`at` started (seconds since the epoch)."""
        tick = self._tick
        if tick is None:
            raise RuntimeError("no tick started: call at() first")
        return tick.t

    def tick_terms(self) -> tuple[float, float, float]:
        """(uptime, busy, shaped) of the tick :meth:`at` started: what the counters scale."""
        tick = self._tick
        if tick is None:
            raise RuntimeError("no tick started: call at() first")
        return tick.uptime, tick.busy, tick.shaped

    def samples(self, family: str, t: float) -> list[Sample]:
        """The samples of ``family`` at ``t`` (seconds since the epoch)."""
        return [
            Sample(name, value, labels, kind)
            for (name, labels, kind), value in zip(
                self._series[family], self.values(family, t), strict=True
            )
        ]

    # --- tables of per-series constants -------------------------------------

    def _cpu_table(self) -> list[tuple[dict[str, str], float, float]]:
        """(labels, a, c): seconds in a mode = a * uptime + c * busy."""
        user, nice, system, irq, softirq, steal = self.profile.busy_split
        iowait = self.profile.iowait_ratio
        rows = []
        for cpu, weight in enumerate(self.profile.core_weights):
            per_mode = {
                "user": (0.0, weight * user),
                "nice": (0.0, weight * nice),
                "system": (0.0, weight * system),
                # Whatever the CPU did not spend otherwise; its rate stays >= 0
                # because weight * (1 + iowait) * MAX_LEVEL <= 1.
                "idle": (1.0, -weight * (1.0 + iowait)),
                "iowait": (0.0, weight * iowait),
                "irq": (0.0, weight * irq),
                "softirq": (0.0, weight * softirq),
                "steal": (0.0, weight * steal),
            }
            if weight * (1.0 + iowait) * MAX_LEVEL > 1.0:
                raise ValueError(f"CPU {cpu} of {self.profile.host_id} would be busier than 100%")
            for mode in CPU_MODES:
                a, c = per_mode[mode]
                rows.append((_labels(cpu=str(cpu), mode=mode), a, c))
        return rows

    def _diskstats_table(self) -> list[tuple[str, dict[str, str], float, float]]:
        """(name, labels, k, quantum): value = floor(shaped * k) * quantum."""
        rows = []
        max_shaped_rate = _STEADY + (1.0 - _STEADY) * MAX_LEVEL / self.profile.activity.mean_level
        for dev in self.profile.block_devices:
            labels = _labels(device=dev.name)
            reads = dev.read_bytes_per_s / dev.read_size
            writes = dev.write_bytes_per_s / dev.write_size
            # Never busier than 90% of the time, even at the highest activity.
            busy = min(dev.utilisation, 0.9 / max_shaped_rate)
            per_field = {
                "read_count": (reads, 1.0),
                "read_merged_count": (reads * 0.08, 1.0),
                "read_bytes": (dev.read_bytes_per_s / 512, 512.0),
                "read_time": (reads * dev.latency_s * 1000, 0.001),
                "write_count": (writes, 1.0),
                "write_merged_count": (writes * 0.6, 1.0),
                "write_bytes": (dev.write_bytes_per_s / 512, 512.0),
                "write_time": (writes * dev.latency_s * 1500, 0.001),
                "busy_time": (busy * 1000, 0.001),
            }
            for name, field, _ in DISKSTATS_COUNTERS:
                k, quantum = per_field[field]
                rows.append((name, labels, k, quantum))
        return rows

    def _netdev_table(self) -> list[tuple[str, dict[str, str], float]]:
        """(name, labels, k): value = floor(shaped * k)."""
        rows = []
        for nic in self.profile.interfaces:
            labels = _labels(device=nic.name)
            per_field = {
                "bytes_recv": nic.receive_bytes_per_s,
                "bytes_sent": nic.transmit_bytes_per_s,
                "packets_recv": nic.receive_bytes_per_s / nic.packet_size,
                "packets_sent": nic.transmit_bytes_per_s / nic.packet_size,
                "errin": nic.error_rate,
                "errout": nic.error_rate * 0.5,
                "dropin": nic.drop_rate,
                "dropout": nic.drop_rate * 0.2,
            }
            rows += [(name, labels, per_field[field]) for name, field in NETDEV_COUNTERS]
        return rows

    # --- families: values in the order of their series -------------------------

    def _cpu(self, tick: _Tick) -> list[float]:
        values: list[float] = (self._cpu_a * tick.uptime + self._cpu_c * tick.busy).tolist()
        return values

    def _memory(self, tick: _Tick) -> list[float]:
        p = self.profile
        n1, n2, _, _ = units(self._noise_keys["memory"], int(tick.t))
        return memory_values(
            p.memory_bytes,
            p.leak_per_day,
            p.app_memory,
            p.page_cache,
            p.swap_bytes,
            uptime=tick.uptime,
            level=tick.level,
            n1=n1,
            n2=n2,
            minimum=min,
            maximum=max,
            kb=_kb,
        )

    def _disk(self, tick: _Tick) -> list[float]:
        values = self._filesystems(tick)
        values += (np.floor(tick.shaped * self._disk_k) * self._disk_quantum).tolist()
        return values

    def _filesystems(self, tick: _Tick) -> list[float]:
        values: list[float] = []
        n1, n2, _, _ = units(self._noise_keys["disk"], int(tick.t))
        for fs in self.profile.filesystems:
            phase = (tick.t / fs.fill_period_s + fs.fill_phase) % 1.0
            used_fraction = fs.fill_low + (fs.fill_high - fs.fill_low) * phase
            used = fs.size_bytes * min(1.0, used_fraction + 0.0005 * (n1 - 0.5))
            free = (fs.size_bytes - int(used)) // 4096 * 4096
            files_used = int(fs.inodes * (0.01 + 0.2 * used_fraction + 0.0001 * n2))
            values += (
                0.0,
                fs.size_bytes,
                free,
                max(0, free - fs.reserved_bytes),
                fs.inodes,
                fs.inodes - files_used,
                0.0,
            )
        return values

    def _network(self, tick: _Tick) -> list[float]:
        values: list[float] = np.trunc(tick.shaped * self._net_k).tolist()
        return values

    def _system(self, tick: _Tick) -> list[float]:
        p = self.profile
        n1, n2, n3, n4 = units(self._noise_keys["system"], int(tick.t))
        cores = p.cores
        weight = sum(p.core_weights) / cores
        running = 1 + int(cores * tick.level * (0.6 + 0.8 * n1))
        blocked = int(tick.level * p.iowait_ratio * cores * 4.0 * n2)
        values: list[float] = []
        jitters = tick.jitters
        for index, window in enumerate(LOAD_WINDOWS_S, start=1):
            start = max(tick.boot, tick.t - window)
            if tick.t - start < 1.0:
                busy_fraction = tick.level
            else:
                # The fleet's jitter is at t - window; a later boot takes its own.
                known = jitters[index] if jitters is not None and start != tick.boot else None
                busy_fraction = (
                    tick.busy - self.activity.busy_since_boot(tick.boot, start, known)
                ) / (tick.t - start)
            # Load counts runnable and uninterruptible tasks; a busy fraction
            # near 1 means a queue, so it grows faster than linearly there.
            load = cores * weight * busy_fraction * (1.0 + busy_fraction) + blocked
            values.append(round(load, 2))
        shaped = tick.shaped
        states = {
            "R": running,
            "S": p.sleeping_processes + int(40 * tick.level * n4),
            "D": blocked,
            "Z": 1 if n3 < 0.02 else 0,
            "T": 0,
            "I": 20 + 3 * cores,
        }
        values += (
            tick.boot,
            int(shaped * cores * p.context_switches_per_core_s),
            int(shaped * cores * p.interrupts_per_core_s),
            int(shaped * p.forks_per_s),
            running,
            blocked,
            1,
            *(states[state] for state in PROCESS_STATES_ALWAYS),
        )
        return values

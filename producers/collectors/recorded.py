"""Snapshots of a host's source data: record one from a real host, replay it in tests.

A snapshot is JSON holding what each :class:`~producers.collectors.sources.HostSource`
method returned at one instant, unfiltered, so tests can check the collectors'
filters and unit conversions against exact numbers. Record one with::

    python -m hoststream.producers.collectors.record tests/unit/producers/data/NAME.json
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hoststream.producers.collectors.sources import HostSource, KernelStat

__all__ = ["SNAPSHOT_FORMAT", "RecordedSource", "record_snapshot", "write_snapshot"]

#: Bumped when the layout of a snapshot changes incompatibly.
SNAPSHOT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class _CpuTimes:
    user: float
    nice: float
    system: float
    idle: float
    iowait: float | None = None
    irq: float | None = None
    softirq: float | None = None
    steal: float | None = None
    guest: float | None = None
    guest_nice: float | None = None


@dataclass(frozen=True, slots=True)
class _Partition:
    device: str
    mountpoint: str
    fstype: str
    opts: str


@dataclass(frozen=True, slots=True)
class _StatVFS:
    f_frsize: int
    f_blocks: int
    f_bfree: int
    f_bavail: int
    f_files: int
    f_ffree: int


@dataclass(frozen=True, slots=True)
class _DiskIO:
    read_count: int
    write_count: int
    read_bytes: int
    write_bytes: int
    read_time: int
    write_time: int
    read_merged_count: int | None = None
    write_merged_count: int | None = None
    busy_time: int | None = None


@dataclass(frozen=True, slots=True)
class _NetIO:
    bytes_sent: int
    bytes_recv: int
    packets_sent: int
    packets_recv: int
    errin: int
    errout: int
    dropin: int
    dropout: int


@dataclass(frozen=True, slots=True)
class _CpuStats:
    ctx_switches: int
    interrupts: int


def _build(cls: type[Any], data: Mapping[str, Any]) -> Any:
    # Extra keys (fields a newer psutil adds) are ignored rather than refused.
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


class RecordedSource:
    """A :class:`~producers.collectors.sources.HostSource` that replays one snapshot.

    Args:
        snapshot: the parsed JSON of a snapshot (see :func:`record_snapshot`).
    """

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        found = snapshot.get("format")
        if found != SNAPSHOT_FORMAT:
            raise ValueError(f"snapshot format {found!r}; this version reads {SNAPSHOT_FORMAT}")
        self.snapshot = snapshot

    @classmethod
    def from_file(cls, path: str | Path) -> RecordedSource:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def cpu_times(self, percpu: bool = True) -> Sequence[_CpuTimes]:
        return [_build(_CpuTimes, t) for t in self.snapshot["cpu_times"]]

    def meminfo(self) -> Mapping[str, int]:
        return dict(self.snapshot["meminfo"])

    def disk_partitions(self, all: bool = True) -> Sequence[_Partition]:
        return [_build(_Partition, p) for p in self.snapshot["disk_partitions"]]

    def statvfs(self, path: str) -> _StatVFS:
        data = self.snapshot["statvfs"].get(path)
        if data is None:
            # Recorded as null: statvfs failed on the real host (e.g. a stale NFS mount).
            raise OSError(f"recorded snapshot has no statvfs for {path!r}")
        return _build(_StatVFS, data)  # type: ignore[no-any-return]

    def disk_io_counters(self, perdisk: bool = True, nowrap: bool = False) -> Mapping[str, _DiskIO]:
        return {k: _build(_DiskIO, v) for k, v in self.snapshot["disk_io_counters"].items()}

    def net_io_counters(self, pernic: bool = True, nowrap: bool = False) -> Mapping[str, _NetIO]:
        return {k: _build(_NetIO, v) for k, v in self.snapshot["net_io_counters"].items()}

    def getloadavg(self) -> tuple[float, float, float]:
        one, five, fifteen = self.snapshot["getloadavg"]
        return float(one), float(five), float(fifteen)

    def boot_time(self) -> float:
        return float(self.snapshot["boot_time"])

    def cpu_stats(self) -> _CpuStats:
        return _build(_CpuStats, self.snapshot["cpu_stats"])  # type: ignore[no-any-return]

    def kernel_stat(self) -> KernelStat | None:
        data = self.snapshot.get("kernel_stat")
        return None if data is None else _build(KernelStat, data)

    def process_states(self) -> Mapping[str, int] | None:
        data = self.snapshot.get("process_states")
        return None if data is None else dict(data)


def _record(value: Any) -> Any:
    """psutil's namedtuples and our dataclasses as plain JSON values."""
    if hasattr(value, "_asdict"):
        return dict(value._asdict())
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return value


def record_snapshot(source: HostSource) -> dict[str, Any]:
    """Everything ``source`` returns, unfiltered, as a JSON-ready snapshot."""
    partitions = [_record(p) for p in source.disk_partitions(all=True)]
    statvfs: dict[str, Any] = {}
    for part in partitions:
        try:
            st = source.statvfs(part["mountpoint"])
        except OSError:
            statvfs[part["mountpoint"]] = None
            continue
        statvfs[part["mountpoint"]] = {
            name: int(getattr(st, name))
            for name in ("f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree")
        }
    kernel = source.kernel_stat()
    states = source.process_states()
    return {
        "format": SNAPSHOT_FORMAT,
        "recorded_at": time.time(),
        "platform": platform.platform(),
        "cpu_times": [_record(t) for t in source.cpu_times(percpu=True)],
        "meminfo": dict(source.meminfo()),
        "disk_partitions": partitions,
        "statvfs": statvfs,
        "disk_io_counters": {
            k: _record(v) for k, v in source.disk_io_counters(perdisk=True, nowrap=False).items()
        },
        "net_io_counters": {
            k: _record(v) for k, v in source.net_io_counters(pernic=True, nowrap=False).items()
        },
        "getloadavg": list(source.getloadavg()),
        "boot_time": source.boot_time(),
        "cpu_stats": _record(source.cpu_stats()),
        "kernel_stat": None if kernel is None else _record(kernel),
        "process_states": None if states is None else dict(states),
    }


def write_snapshot(path: str | Path, source: HostSource | None = None) -> dict[str, Any]:
    """Record ``source`` (default: this host) and write it to ``path`` as JSON."""
    if source is None:
        from hoststream.producers.collectors.live import LiveSource

        source = LiveSource()
    snapshot = record_snapshot(source)
    Path(path).write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return snapshot

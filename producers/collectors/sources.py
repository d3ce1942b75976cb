"""What a collector reads from: psutil-shaped protocols, so the data source is a parameter.

The methods named after psutil functions take psutil's arguments and return
objects with psutil's attribute names, so :class:`~producers.collectors.live.LiveSource`
can hand psutil's results straight through. The others (:meth:`HostSource.meminfo`,
:meth:`HostSource.statvfs`, :meth:`HostSource.kernel_stat`,
:meth:`HostSource.process_states`) cover what psutil does not give, or gives
differently from node_exporter. :class:`~producers.collectors.recorded.RecordedSource`
replays all of it from a JSON snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CpuSource",
    "CpuStats",
    "CpuTimes",
    "DiskIO",
    "DiskPartition",
    "DiskSource",
    "HostSource",
    "KernelStat",
    "MemorySource",
    "NetIO",
    "NetworkSource",
    "StatVFS",
    "SystemSource",
]


class CpuTimes(Protocol):
    """One item of ``psutil.cpu_times(percpu=True)``, in seconds.

    Only the modes every platform has are declared; collectors read the others
    (``iowait``, ``irq``, ``softirq``, ``steal``) with ``getattr`` and skip
    the ones a platform lacks.
    """

    @property
    def user(self) -> float: ...
    @property
    def nice(self) -> float: ...
    @property
    def system(self) -> float: ...
    @property
    def idle(self) -> float: ...


class DiskPartition(Protocol):
    """One item of ``psutil.disk_partitions(all=True)``."""

    @property
    def device(self) -> str: ...
    @property
    def mountpoint(self) -> str: ...
    @property
    def fstype(self) -> str: ...
    @property
    def opts(self) -> str: ...


class StatVFS(Protocol):
    """The fields of ``os.statvfs`` a filesystem's sizes come from."""

    @property
    def f_frsize(self) -> int: ...
    @property
    def f_blocks(self) -> int: ...
    @property
    def f_bfree(self) -> int: ...
    @property
    def f_bavail(self) -> int: ...
    @property
    def f_files(self) -> int: ...
    @property
    def f_ffree(self) -> int: ...


class DiskIO(Protocol):
    """One value of ``psutil.disk_io_counters(perdisk=True)``: counts, bytes, milliseconds.

    ``read_merged_count``, ``write_merged_count`` and ``busy_time`` exist on
    Linux only and are read with ``getattr``.
    """

    @property
    def read_count(self) -> int: ...
    @property
    def write_count(self) -> int: ...
    @property
    def read_bytes(self) -> int: ...
    @property
    def write_bytes(self) -> int: ...
    @property
    def read_time(self) -> int: ...
    @property
    def write_time(self) -> int: ...


class NetIO(Protocol):
    """One value of ``psutil.net_io_counters(pernic=True)``."""

    @property
    def bytes_sent(self) -> int: ...
    @property
    def bytes_recv(self) -> int: ...
    @property
    def packets_sent(self) -> int: ...
    @property
    def packets_recv(self) -> int: ...
    @property
    def errin(self) -> int: ...
    @property
    def errout(self) -> int: ...
    @property
    def dropin(self) -> int: ...
    @property
    def dropout(self) -> int: ...


class CpuStats(Protocol):
    """``psutil.cpu_stats()``: totals since boot."""

    @property
    def ctx_switches(self) -> int: ...
    @property
    def interrupts(self) -> int: ...


@dataclass(frozen=True, slots=True)
class KernelStat:
    """The /proc/stat lines psutil does not expose (Linux only)."""

    #: ``processes``: forks since boot.
    forks: int
    #: ``procs_running``: runnable tasks (threads included) right now.
    procs_running: int
    #: ``procs_blocked``: tasks blocked on I/O right now.
    procs_blocked: int


class CpuSource(Protocol):
    def cpu_times(self, percpu: bool = ...) -> Sequence[CpuTimes]: ...


class MemorySource(Protocol):
    def meminfo(self) -> Mapping[str, int]:
        """/proc/meminfo as ``{field: bytes}`` (kB fields already multiplied by 1024)."""
        ...


class DiskSource(Protocol):
    def disk_partitions(self, all: bool = ...) -> Sequence[DiskPartition]: ...
    def statvfs(self, path: str) -> StatVFS:
        """``os.statvfs(path)``; raises ``OSError`` when the filesystem does not answer."""
        ...

    def disk_io_counters(self, perdisk: bool = ..., nowrap: bool = ...) -> Mapping[str, DiskIO]: ...


class NetworkSource(Protocol):
    def net_io_counters(self, pernic: bool = ..., nowrap: bool = ...) -> Mapping[str, NetIO]: ...


class SystemSource(Protocol):
    def getloadavg(self) -> tuple[float, float, float]: ...
    def boot_time(self) -> float: ...
    def cpu_stats(self) -> CpuStats: ...
    def kernel_stat(self) -> KernelStat | None:
        """Forks and runnable/blocked task counts, or ``None`` where /proc/stat does not exist."""
        ...

    def process_states(self) -> Mapping[str, int] | None:
        """Processes per one-letter state (``R``, ``S``, ``D``...), or ``None`` if unknown."""
        ...


class HostSource(CpuSource, MemorySource, DiskSource, NetworkSource, SystemSource, Protocol):
    """Everything the five collectors read: what one host offers."""

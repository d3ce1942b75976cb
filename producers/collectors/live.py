"""The real host: psutil, plus the few /proc files read directly to match node_exporter."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from hoststream.producers.collectors.procfs import (
    ProcessStates,
    parse_kernel_stat,
    parse_meminfo,
    parse_mounts,
)
from hoststream.producers.collectors.sources import (
    CpuStats,
    CpuTimes,
    DiskIO,
    DiskPartition,
    KernelStat,
    NetIO,
    StatVFS,
)

__all__ = ["LiveSource"]

# psutil's status names, mapped back to the kernel's letters that
# node_exporter uses as the ``state`` label (only needed off Linux).
_PSUTIL_STATUS_LETTERS = {
    "running": "R",
    "sleeping": "S",
    "disk-sleep": "D",
    "stopped": "T",
    "tracing-stop": "t",
    "zombie": "Z",
    "dead": "X",
    "wake-kill": "K",
    "waking": "W",
    "parked": "P",
    "idle": "I",
    "locked": "L",
    "waiting": "W",
    "suspended": "T",
}


class LiveSource:
    """Reads this host: psutil for most values, ``proc_root`` for the rest.

    Args:
        psutil_module: the psutil module (or a stand-in with the same functions);
            ``None`` imports psutil.
        proc_root: where /proc is mounted; point it at the host's /proc when
            running in a container. It covers only the files read here
            (``meminfo``, ``stat``, ``1/mounts``, ``<pid>/stat``); psutil reads
            ``psutil.PROCFS_PATH``, which the caller sets if it must differ.
        statvfs: ``os.statvfs`` or a stand-in, for filesystem sizes and inodes.
    """

    def __init__(
        self,
        psutil_module: ModuleType | None = None,
        proc_root: str | os.PathLike[str] = "/proc",
        statvfs: Callable[[str], StatVFS] = os.statvfs,
    ) -> None:
        if psutil_module is None:
            import psutil

            psutil_module = psutil
        self._psutil: Any = psutil_module
        self._proc = Path(proc_root)
        self._statvfs = statvfs
        self._has_proc = (self._proc / "stat").is_file()
        self._process_states: ProcessStates | None = None

    def _read(self, name: str) -> str:
        return (self._proc / name).read_text(encoding="ascii", errors="replace")

    # --- psutil ---------------------------------------------------------

    def cpu_times(self, percpu: bool = True) -> Sequence[CpuTimes]:
        result = self._psutil.cpu_times(percpu=percpu)
        return list(result) if percpu else [result]

    def disk_io_counters(self, perdisk: bool = True, nowrap: bool = False) -> Mapping[str, DiskIO]:
        # nowrap=False: raw kernel counters, as node_exporter sends; psutil's
        # default would keep a process-local correction that hides real resets.
        return self._psutil.disk_io_counters(perdisk=perdisk, nowrap=nowrap) or {}

    def net_io_counters(self, pernic: bool = True, nowrap: bool = False) -> Mapping[str, NetIO]:
        return self._psutil.net_io_counters(pernic=pernic, nowrap=nowrap) or {}

    def getloadavg(self) -> tuple[float, float, float]:
        one, five, fifteen = self._psutil.getloadavg()
        return float(one), float(five), float(fifteen)

    def boot_time(self) -> float:
        return float(self._psutil.boot_time())

    def cpu_stats(self) -> CpuStats:
        return self._psutil.cpu_stats()  # type: ignore[no-any-return]

    # --- read directly where node_exporter differs from psutil ------------

    def disk_partitions(self, all: bool = True) -> Sequence[DiskPartition]:
        """Mounts as node_exporter lists them: ``/proc/1/mounts``, else ``/proc/mounts``.

        Reading pid 1's table sees the host's mounts from inside a container
        that shares the host's /proc. Without /proc, psutil's list is used.
        """
        for name in ("1/mounts", "mounts"):
            try:
                return parse_mounts(self._read(name))
            except OSError:
                continue
        return list(self._psutil.disk_partitions(all=all))

    def statvfs(self, path: str) -> StatVFS:
        return self._statvfs(path)

    def meminfo(self) -> Mapping[str, int]:
        if self._has_proc:
            return parse_meminfo(self._read("meminfo"))
        # Off Linux: psutil's fields under the kernel's names, where it has them.
        vm = self._psutil.virtual_memory()
        swap = self._psutil.swap_memory()
        fields = {"MemTotal": vm.total, "MemAvailable": vm.available, "MemFree": vm.free}
        for attr, name in (("buffers", "Buffers"), ("cached", "Cached"), ("shared", "Shmem")):
            if hasattr(vm, attr):
                fields[name] = getattr(vm, attr)
        fields["SwapTotal"] = swap.total
        fields["SwapFree"] = swap.free
        return {k: int(v) for k, v in fields.items()}

    def kernel_stat(self) -> KernelStat | None:
        if not self._has_proc:
            return None
        return parse_kernel_stat(self._read("stat"))

    def process_states(self) -> Mapping[str, int] | None:
        if self._has_proc:
            if self._process_states is None:
                self._process_states = ProcessStates(self._proc)
            return self._process_states()
        counts: dict[str, int] = {}
        for proc in self._psutil.process_iter(["status"]):
            letter = _PSUTIL_STATUS_LETTERS.get(proc.info["status"], "?")
            counts[letter] = counts.get(letter, 0) + 1
        return counts

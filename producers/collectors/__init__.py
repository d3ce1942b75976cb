"""Metric collectors: one per family, each reading a source given to it.

Start with :func:`default_collectors`, which builds the five collectors over
one :class:`~producers.collectors.sources.HostSource` (psutil-shaped:
:class:`LiveSource` for this host, :class:`RecordedSource` for a recorded
snapshot) and one :class:`FileSource` (/proc and /sys: :class:`HostFiles`
over ``/`` or over a recorded tree). A family is made of parts, each one of
node_exporter's collectors. Names, units and labels follow node_exporter 1.5
(``docs/metrics.md``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from hoststream.producers.collectors.base import Collector, FamilyCollector, NameFilter, Part
from hoststream.producers.collectors.cpu import CpuCollector
from hoststream.producers.collectors.disk import (
    DEFAULT_DISK_DEVICE_EXCLUDE,
    DEFAULT_FS_TYPES_EXCLUDE,
    DEFAULT_MOUNT_POINTS_EXCLUDE,
    DiskCollector,
)
from hoststream.producers.collectors.diskstats import DiskStatsPart, NvmePart
from hoststream.producers.collectors.files import FileSource, HostFiles
from hoststream.producers.collectors.hwmon import HwmonTempPart, ThermalZonePart
from hoststream.producers.collectors.kernel import (
    CpufreqPart,
    EntropyPart,
    FilefdPart,
    OsReleasePart,
    PressurePart,
    SchedstatPart,
    SelinuxPart,
    TimePart,
    TimexPart,
    UnamePart,
)
from hoststream.producers.collectors.live import LiveSource
from hoststream.producers.collectors.memory import MemoryCollector, VmstatPart
from hoststream.producers.collectors.netstats import (
    ArpPart,
    ConntrackPart,
    NetClassPart,
    NetDevPart,
    NetstatPart,
    SockstatPart,
    SoftnetPart,
    UdpQueuesPart,
)
from hoststream.producers.collectors.network import NetworkCollector
from hoststream.producers.collectors.recorded import RecordedSource, record_snapshot, write_snapshot
from hoststream.producers.collectors.sources import HostSource
from hoststream.producers.collectors.system import SystemCollector
from hoststream.schemas.records import FAMILIES, Sample

__all__ = [
    "DEFAULT_DISK_DEVICE_EXCLUDE",
    "DEFAULT_FS_TYPES_EXCLUDE",
    "DEFAULT_MOUNT_POINTS_EXCLUDE",
    "Collector",
    "CpuCollector",
    "DiskCollector",
    "FamilyCollector",
    "FileSource",
    "HostFiles",
    "HostSource",
    "LiveSource",
    "MemoryCollector",
    "NameFilter",
    "NetworkCollector",
    "Part",
    "RecordedSource",
    "SystemCollector",
    "default_collectors",
    "record_snapshot",
    "write_snapshot",
]


def default_collectors(
    source: HostSource | None = None,
    families: Iterable[str] = FAMILIES,
    *,
    files: FileSource | None = None,
    mount_points_exclude: str | None = DEFAULT_MOUNT_POINTS_EXCLUDE,
    fs_types_exclude: str | None = DEFAULT_FS_TYPES_EXCLUDE,
    disk_device_exclude: str | None = DEFAULT_DISK_DEVICE_EXCLUDE,
    disk_device_include: str | None = None,
    network_device_exclude: str | None = None,
    network_device_include: str | None = None,
    meminfo_fields: tuple[str, ...] | None = None,
    process_states: bool = True,
) -> list[Collector]:
    """One collector per family in ``families``, in that order, all reading ``source``.

    Args:
        source: where the psutil-shaped values come from; ``None`` reads this
            host (:class:`LiveSource`), and then ``files`` defaults to this
            host's /proc and /sys when it has them.
        families: which families to collect; an unknown name raises ``ValueError``.
        files: the /proc and /sys tree node_exporter's other collectors read
            (meminfo aside, every series beyond psutil's comes from there);
            ``None`` with a ``source`` given: psutil's series only.
        mount_points_exclude, fs_types_exclude, disk_device_exclude,
        disk_device_include: :class:`DiskCollector`'s filters.
        network_device_exclude, network_device_include: the netdev filters.
        meminfo_fields: the /proc/meminfo fields to send; ``None``: all of them.
        process_states: send ``node_processes_state``, which walks every
            process; the agent leaves it out unless
            ``HOSTSTREAM_COLLECT_PROCESS_STATES`` asks for it (node_exporter's
            processes collector is off by default too).
    """
    src: HostSource = LiveSource() if source is None else source
    if files is None and source is None and os.path.isfile("/proc/stat"):
        files = HostFiles("/")

    def build(family: str) -> Collector:
        if family == "cpu":
            cpu = CpuCollector(src)
            if files is None:
                return cpu
            return FamilyCollector("cpu", [cpu, SchedstatPart(files), CpufreqPart(files)])
        if family == "memory":
            memory = MemoryCollector(src, meminfo_fields)
            if files is None:
                return memory
            return FamilyCollector("memory", [memory, VmstatPart(files)])
        if family == "disk":
            disk = DiskCollector(
                src,
                mount_points_exclude=mount_points_exclude,
                fs_types_exclude=fs_types_exclude,
                device_exclude=disk_device_exclude,
                device_include=disk_device_include,
            )
            if files is None:
                return disk
            # /proc/diskstats has every field node_exporter sends; psutil has nine.
            stats = DiskStatsPart(
                files, device_exclude=disk_device_exclude, device_include=disk_device_include
            )
            return FamilyCollector("disk", [_Filesystems(disk), stats, NvmePart(files)])
        if family == "network":
            if files is None:
                return NetworkCollector(
                    src,
                    device_exclude=network_device_exclude,
                    device_include=network_device_include,
                )
            netdev = NetDevPart(
                files, device_exclude=network_device_exclude, device_include=network_device_include
            )
            return FamilyCollector(
                "network",
                [
                    netdev,
                    NetClassPart(files),
                    NetstatPart(files),
                    SockstatPart(files, page_size=_page_size()),
                    SoftnetPart(files),
                    ArpPart(files),
                    UdpQueuesPart(files),
                    ConntrackPart(files),
                ],
            )
        if family == "system":
            system = SystemCollector(src, process_states=process_states)
            if files is None:
                return system
            return FamilyCollector(
                "system",
                [
                    system,
                    UnamePart(files),
                    OsReleasePart(files),
                    TimePart(files),
                    TimexPart(),
                    FilefdPart(files),
                    EntropyPart(files),
                    PressurePart(files),
                    SelinuxPart(files),
                    HwmonTempPart(files),
                    ThermalZonePart(files),
                ],
            )
        raise ValueError(f"unknown metric family {family!r}; known: {', '.join(FAMILIES)}")

    return [build(family) for family in families]


class _Filesystems:
    """The filesystem half of :class:`DiskCollector`, as a part."""

    def __init__(self, disk: DiskCollector) -> None:
        self._disk = disk

    def collect(self) -> list[Sample]:
        return self._disk.collect_filesystems()

    def __repr__(self) -> str:
        return "Filesystems"


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 4096

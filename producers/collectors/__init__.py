"""Metric collectors: one per family, each reading a source given to it.

Start with :func:`default_collectors`, which builds the five collectors over
one :class:`~producers.collectors.sources.HostSource`: :class:`LiveSource` for
this host, :class:`RecordedSource` for a recorded snapshot. Names, units and
labels follow node_exporter 1.5 (``docs/metrics.md``; the tables are in
:mod:`producers.collectors.names`).
"""

from __future__ import annotations

from collections.abc import Iterable

from hoststream.producers.collectors.base import Collector, NameFilter
from hoststream.producers.collectors.cpu import CpuCollector
from hoststream.producers.collectors.disk import (
    DEFAULT_DISK_DEVICE_EXCLUDE,
    DEFAULT_FS_TYPES_EXCLUDE,
    DEFAULT_MOUNT_POINTS_EXCLUDE,
    DiskCollector,
)
from hoststream.producers.collectors.live import LiveSource
from hoststream.producers.collectors.memory import MemoryCollector
from hoststream.producers.collectors.network import NetworkCollector
from hoststream.producers.collectors.recorded import RecordedSource, record_snapshot, write_snapshot
from hoststream.producers.collectors.sources import HostSource
from hoststream.producers.collectors.system import SystemCollector
from hoststream.schemas.records import FAMILIES

__all__ = [
    "DEFAULT_DISK_DEVICE_EXCLUDE",
    "DEFAULT_FS_TYPES_EXCLUDE",
    "DEFAULT_MOUNT_POINTS_EXCLUDE",
    "Collector",
    "CpuCollector",
    "DiskCollector",
    "HostSource",
    "LiveSource",
    "MemoryCollector",
    "NameFilter",
    "NetworkCollector",
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
    mount_points_exclude: str | None = DEFAULT_MOUNT_POINTS_EXCLUDE,
    fs_types_exclude: str | None = DEFAULT_FS_TYPES_EXCLUDE,
    disk_device_exclude: str | None = DEFAULT_DISK_DEVICE_EXCLUDE,
    disk_device_include: str | None = None,
    network_device_exclude: str | None = None,
    network_device_include: str | None = None,
) -> list[Collector]:
    """One collector per family in ``families``, in that order, all reading ``source``.

    Args:
        source: where the values come from; ``None`` reads this host (:class:`LiveSource`).
        families: which families to collect; an unknown name raises ``ValueError``.
        mount_points_exclude, fs_types_exclude, disk_device_exclude,
        disk_device_include: :class:`DiskCollector`'s filters.
        network_device_exclude, network_device_include: :class:`NetworkCollector`'s filters.
    """
    src: HostSource = LiveSource() if source is None else source

    def build(family: str) -> Collector:
        if family == "cpu":
            return CpuCollector(src)
        if family == "memory":
            return MemoryCollector(src)
        if family == "disk":
            return DiskCollector(
                src,
                mount_points_exclude=mount_points_exclude,
                fs_types_exclude=fs_types_exclude,
                device_exclude=disk_device_exclude,
                device_include=disk_device_include,
            )
        if family == "network":
            return NetworkCollector(
                src, device_exclude=network_device_exclude, device_include=network_device_include
            )
        if family == "system":
            return SystemCollector(src)
        raise ValueError(f"unknown metric family {family!r}; known: {', '.join(FAMILIES)}")

    return [build(family) for family in families]

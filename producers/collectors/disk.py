"""``disk``: filesystem space and inodes, and block-device I/O, as node_exporter.

Two node_exporter collectors in one family: ``filesystem`` (gauges labelled
``device``, ``fstype``, ``mountpoint``) and ``diskstats`` (counters labelled
``device``). Each has node_exporter's default filters.
"""

from __future__ import annotations

from hoststream.producers.collectors.base import NameFilter, compile_pattern
from hoststream.producers.collectors.names import DISKSTATS_COUNTERS, FILESYSTEM_GAUGES
from hoststream.producers.collectors.sources import DiskSource
from hoststream.schemas.records import MetricKind, Sample

__all__ = [
    "DEFAULT_DISK_DEVICE_EXCLUDE",
    "DEFAULT_FS_TYPES_EXCLUDE",
    "DEFAULT_MOUNT_POINTS_EXCLUDE",
    "DiskCollector",
]

#: node_exporter 1.5's ``--collector.filesystem.mount-points-exclude`` default.
#: (Debian's package patches it to also leave out /run, /mnt and /media.)
DEFAULT_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
#: node_exporter 1.5's ``--collector.filesystem.fs-types-exclude`` default.
#: tmpfs is *not* in it: a tmpfs mounted on /tmp is reported.
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs"
    r"|sysfs|tracefs)$"
)
#: node_exporter 1.5's ``--collector.diskstats.device-exclude`` default: RAM disks,
#: loop devices, floppies and partitions, so each disk is counted once.
DEFAULT_DISK_DEVICE_EXCLUDE = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"

_SIZE, _FREE, _AVAIL, _FILES, _FILES_FREE, _READONLY = FILESYSTEM_GAUGES[1:]
_DEVICE_ERROR = FILESYSTEM_GAUGES[0]


class DiskCollector:
    """Filesystem gauges and block-device counters.

    Args:
        source: psutil's ``disk_partitions`` and ``disk_io_counters``, plus
            ``statvfs(path)``.
        mount_points_exclude: regex of mount points to leave out; ``None`` keeps all.
        fs_types_exclude: regex of filesystem types to leave out; ``None`` keeps all.
        device_exclude: regex of block devices to leave out of the I/O counters.
        device_include: regex of block devices to keep (instead of ``device_exclude``,
            which must then be ``None``).

    Sizes come from ``statvfs`` (block counts times ``f_frsize``); psutil's
    ``disk_usage`` is not used because its ``free`` is node_exporter's
    ``avail``. A filesystem whose ``statvfs`` fails is reported with
    ``node_filesystem_device_error`` 1 and no sizes, as node_exporter does.
    """

    family = "disk"

    def __init__(
        self,
        source: DiskSource,
        *,
        mount_points_exclude: str | None = DEFAULT_MOUNT_POINTS_EXCLUDE,
        fs_types_exclude: str | None = DEFAULT_FS_TYPES_EXCLUDE,
        device_exclude: str | None = DEFAULT_DISK_DEVICE_EXCLUDE,
        device_include: str | None = None,
    ) -> None:
        self._source = source
        self._mount_points_exclude = compile_pattern("mount_points_exclude", mount_points_exclude)
        self._fs_types_exclude = compile_pattern("fs_types_exclude", fs_types_exclude)
        self._devices = NameFilter(
            device_exclude,
            device_include,
            exclude_parameter="device_exclude",
            include_parameter="device_include",
        )

    def collect(self) -> list[Sample]:
        return self.collect_filesystems() + self.collect_devices()

    def collect_filesystems(self) -> list[Sample]:
        samples: list[Sample] = []
        gauge = MetricKind.GAUGE
        seen: set[tuple[str, str, str]] = set()
        for part in self._source.disk_partitions(all=True):
            if self._mount_points_exclude and self._mount_points_exclude.search(part.mountpoint):
                continue
            if self._fs_types_exclude and self._fs_types_exclude.search(part.fstype):
                continue
            # The same mount can be listed twice (bind mounts, stacked mounts);
            # node_exporter reports each label set once.
            key = (part.device, part.fstype, part.mountpoint)
            if key in seen:
                continue
            seen.add(key)
            labels = {"device": part.device, "fstype": part.fstype, "mountpoint": part.mountpoint}
            try:
                st = self._source.statvfs(part.mountpoint)
            except OSError:
                samples.append(Sample(_DEVICE_ERROR, 1.0, labels, gauge))
                continue
            # f_blocks counts f_frsize units (POSIX); node_exporter multiplies by
            # Bsize, which is the same on the usual filesystems (ext4, xfs, tmpfs).
            unit = st.f_frsize
            readonly = 1.0 if "ro" in part.opts.split(",") else 0.0
            samples += [
                Sample(_DEVICE_ERROR, 0.0, labels, gauge),
                Sample(_SIZE, float(st.f_blocks * unit), labels, gauge),
                Sample(_FREE, float(st.f_bfree * unit), labels, gauge),
                Sample(_AVAIL, float(st.f_bavail * unit), labels, gauge),
                Sample(_FILES, float(st.f_files), labels, gauge),
                Sample(_FILES_FREE, float(st.f_ffree), labels, gauge),
                Sample(_READONLY, readonly, labels, gauge),
            ]
        return samples

    def collect_devices(self) -> list[Sample]:
        samples: list[Sample] = []
        counter = MetricKind.COUNTER
        counters = self._source.disk_io_counters(perdisk=True, nowrap=False)
        for device, io in counters.items():
            if not self._devices(device):
                continue
            labels = {"device": device}
            for name, attr, divisor in DISKSTATS_COUNTERS:
                raw = getattr(io, attr, None)
                if raw is not None:
                    # Dividing (not multiplying by 0.001) keeps 13775 ms at exactly 13.775 s.
                    samples.append(Sample(name, raw / divisor, labels, counter))
        return samples

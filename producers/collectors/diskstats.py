"""node_exporter's diskstats collector (every /proc/diskstats field, and ``node_disk_info``)
and its nvme collector (``node_nvme_info``)."""

from __future__ import annotations

from hoststream.producers.collectors.base import NameFilter
from hoststream.producers.collectors.files import FileSource
from hoststream.producers.collectors.kernel import info_labels
from hoststream.schemas.records import MetricKind, Sample

__all__ = ["DiskStatsPart", "NvmePart"]

_SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size
GAUGE = MetricKind.GAUGE
COUNTER = MetricKind.COUNTER

# (series, kind, multiplier) for the columns after major, minor and name, in order.
# Times are in milliseconds; node_exporter reports seconds.
_COLUMNS: tuple[tuple[str, MetricKind, float], ...] = (
    ("node_disk_reads_completed_total", COUNTER, 1),
    ("node_disk_reads_merged_total", COUNTER, 1),
    ("node_disk_read_bytes_total", COUNTER, _SECTOR),
    ("node_disk_read_time_seconds_total", COUNTER, 0.001),
    ("node_disk_writes_completed_total", COUNTER, 1),
    ("node_disk_writes_merged_total", COUNTER, 1),
    ("node_disk_written_bytes_total", COUNTER, _SECTOR),
    ("node_disk_write_time_seconds_total", COUNTER, 0.001),
    ("node_disk_io_now", GAUGE, 1),
    ("node_disk_io_time_seconds_total", COUNTER, 0.001),
    ("node_disk_io_time_weighted_seconds_total", COUNTER, 0.001),
    ("node_disk_discards_completed_total", COUNTER, 1),
    ("node_disk_discards_merged_total", COUNTER, 1),
    ("node_disk_discarded_sectors_total", COUNTER, 1),
    ("node_disk_discard_time_seconds_total", COUNTER, 0.001),
    ("node_disk_flush_requests_total", COUNTER, 1),
    ("node_disk_flush_requests_time_seconds_total", COUNTER, 0.001),
)

# udev properties node_exporter puts on node_disk_info, by label.
_UDEV_INFO = (
    ("path", "ID_PATH"),
    ("wwn", "ID_WWN"),
    ("model", "ID_MODEL"),
    ("serial", "ID_SERIAL_SHORT"),
    ("revision", "ID_REVISION"),
)


class DiskStatsPart:
    """Per block device: I/O counters, ``node_disk_io_now`` and ``node_disk_info``.

    Args:
        files: for ``/proc/diskstats`` and udev's ``/run/udev/data/b<major>:<minor>``.
        device_exclude, device_include: node_exporter's diskstats filters (regex).

    Milliseconds are divided by 1000, as ``13775 / 1000`` gives exactly 13.775.
    """

    def __init__(
        self,
        files: FileSource,
        *,
        device_exclude: str | None = None,
        device_include: str | None = None,
    ) -> None:
        self._files = files
        self._devices = NameFilter(
            device_exclude,
            device_include,
            exclude_parameter="disk_device_exclude",
            include_parameter="disk_device_include",
        )
        self._info: dict[tuple[str, str, str], Sample] = {}

    def _info_sample(self, device: str, major: str, minor: str) -> Sample:
        key = (device, major, minor)
        sample = self._info.get(key)
        if sample is None:
            labels = {"device": device, "major": major, "minor": minor}
            try:
                udev = self._files.read(f"/run/udev/data/b{major}:{minor}")
            except OSError:
                udev = ""
            properties = dict(
                line[2:].partition("=")[::2] for line in udev.splitlines() if line.startswith("E:")
            )
            labels.update((label, properties.get(prop, "")) for label, prop in _UDEV_INFO)
            sample = self._info[key] = Sample("node_disk_info", 1.0, info_labels(labels), GAUGE)
        return sample

    def collect(self) -> list[Sample]:
        try:
            text = self._files.read("/proc/diskstats")
        except OSError:
            return []
        samples: list[Sample] = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 14 or not self._devices(fields[2]):
                continue
            info = self._info_sample(fields[2], fields[0], fields[1])
            samples.append(info)
            labels = {"device": fields[2]}
            for (name, kind, scale), raw in zip(_COLUMNS, fields[3:], strict=False):
                value = int(raw) / 1000 if scale == 0.001 else float(int(raw) * scale)
                samples.append(Sample(name, value, labels, kind))
        return samples


class NvmePart:
    """``node_nvme_info{device, firmware_revision, model, serial, state}`` 1 per NVMe controller."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def _text(self, path: str) -> str:
        try:
            return self._files.read(path).strip()
        except OSError:
            return ""

    def collect(self) -> list[Sample]:
        try:
            controllers = self._files.listdir("/sys/class/nvme")
        except OSError:
            return []
        samples = []
        for device in controllers:
            base = f"/sys/class/nvme/{device}"
            labels = {
                "device": device,
                "firmware_revision": self._text(f"{base}/firmware_rev"),
                "model": self._text(f"{base}/model"),
                "serial": self._text(f"{base}/serial"),
                "state": self._text(f"{base}/state"),
            }
            samples.append(Sample("node_nvme_info", 1.0, info_labels(labels), GAUGE))
        return samples

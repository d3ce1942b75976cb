"""``memory``: every /proc/meminfo field, and the /proc/vmstat counters node_exporter sends."""

from __future__ import annotations

import re

from hoststream.producers.collectors.files import FileSource
from hoststream.producers.collectors.sources import MemorySource
from hoststream.schemas.records import MetricKind, Sample

__all__ = ["DEFAULT_VMSTAT_FIELDS", "MemoryCollector", "VmstatPart", "meminfo_series"]

#: node_exporter 1.5's ``--collector.vmstat.fields`` default.
DEFAULT_VMSTAT_FIELDS = r"^(oom_kill|pgpg|pswp|pg.*fault).*"


def meminfo_series(field: str) -> str:
    """node_exporter's name for a /proc/meminfo field.

    ``Active(anon)`` becomes ``node_memory_Active_anon_bytes``; the page counts
    without a unit (``HugePages_Total``...) get no ``_bytes``.
    """
    name = field.replace("(", "_").replace(")", "")
    if field.startswith("HugePages_"):
        return f"node_memory_{name}"
    return f"node_memory_{name}_bytes"


class MemoryCollector:
    """``node_memory_<field>_bytes`` gauges, one per /proc/meminfo field.

    Args:
        source: anything with ``meminfo() -> {field: bytes}``.
        fields: which /proc/meminfo fields to send; ``None`` (the default) sends
            every field the host has, as node_exporter does.
    """

    family = "memory"

    def __init__(
        self,
        source: MemorySource,
        fields: tuple[str, ...] | None = None,
    ) -> None:
        self._source = source
        self._fields = fields
        self._names: dict[str, str] = {}

    def _name(self, field: str) -> str:
        name = self._names.get(field)
        if name is None:
            name = self._names[field] = meminfo_series(field)
        return name

    def collect(self) -> list[Sample]:
        info = self._source.meminfo()
        gauge = MetricKind.GAUGE
        fields = info.keys() if self._fields is None else [f for f in self._fields if f in info]
        return [Sample(self._name(field), float(info[field]), {}, gauge) for field in fields]


class VmstatPart:
    """``node_vmstat_<field>`` counters from /proc/vmstat (node_exporter reports them untyped).

    Args:
        files: for ``/proc/vmstat``.
        fields: regex of the fields to send (node_exporter's default).
    """

    def __init__(self, files: FileSource, fields: str = DEFAULT_VMSTAT_FIELDS) -> None:
        self._files = files
        self._fields = re.compile(fields)
        self._wanted: dict[str, str | None] = {}

    def collect(self) -> list[Sample]:
        try:
            text = self._files.read("/proc/vmstat")
        except OSError:
            return []
        samples = []
        for line in text.splitlines():
            key, _, raw = line.partition(" ")
            name = self._wanted.get(key, "")
            if name == "":
                name = self._wanted[key] = (
                    f"node_vmstat_{key}" if self._fields.search(key) else None
                )
            if name is not None:
                samples.append(Sample(name, float(raw), {}, MetricKind.COUNTER))
        return samples

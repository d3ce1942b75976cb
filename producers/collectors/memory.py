"""``memory``: the /proc/meminfo fields node_exporter's meminfo collector reports."""

from __future__ import annotations

from hoststream.producers.collectors.names import MEMINFO_FIELDS, meminfo_metric
from hoststream.producers.collectors.sources import MemorySource
from hoststream.schemas.records import MetricKind, Sample

__all__ = ["MemoryCollector"]


class MemoryCollector:
    """``node_memory_<field>_bytes`` gauges, one per /proc/meminfo field.

    Args:
        source: anything with ``meminfo() -> {field: bytes}``.
        fields: which /proc/meminfo fields to send (default:
            :data:`~producers.collectors.names.MEMINFO_FIELDS`); a field the host
            does not have is left out.
    """

    family = "memory"

    def __init__(self, source: MemorySource, fields: tuple[str, ...] = MEMINFO_FIELDS) -> None:
        self._source = source
        self._fields = tuple((field, meminfo_metric(field)) for field in fields)

    def collect(self) -> list[Sample]:
        info = self._source.meminfo()
        return [
            Sample(name, float(info[field]), {}, MetricKind.GAUGE)
            for field, name in self._fields
            if field in info
        ]

"""The Python shape of hoststream's Avro records.

Producers, stream processors and sinks work with these objects; only the codecs
in this package turn them into bytes and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["FAMILIES", "MetricEvent", "MetricKind", "Sample"]

#: The metric families, each with its own topic ``metrics.<family>``.
FAMILIES = ("cpu", "memory", "disk", "network", "system")


class MetricKind(StrEnum):
    GAUGE = "GAUGE"
    COUNTER = "COUNTER"


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement: a node_exporter-style name, its labels, value and kind."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    kind: MetricKind = MetricKind.GAUGE

    def to_avro(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "value": float(self.value),
                "labels": dict(self.labels)}

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Sample:
        return cls(record["name"], record["value"], record.get("labels", {}),
                   MetricKind(record["kind"]))


def _millis(value: int | datetime) -> int:
    # fastavro decodes timestamp-millis to an aware datetime.
    if isinstance(value, datetime):
        return int(round(value.timestamp() * 1000))
    return int(value)


@dataclass(frozen=True, slots=True)
class MetricEvent:
    """One host's samples of one family at one instant (``schemas/metric_event.avsc``)."""

    host: str
    family: str
    timestamp_ms: int
    samples: tuple[Sample, ...]
    interval_ms: int = 10_000
    seq: int = 0
    host_labels: Mapping[str, str] = field(default_factory=dict)

    def to_avro(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "family": self.family,
            "timestamp_ms": self.timestamp_ms,
            "interval_ms": self.interval_ms,
            "seq": self.seq,
            "host_labels": dict(self.host_labels),
            "samples": [s.to_avro() for s in self.samples],
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> MetricEvent:
        return cls(
            host=record["host"],
            family=record["family"],
            timestamp_ms=_millis(record["timestamp_ms"]),
            samples=tuple(Sample.from_avro(s) for s in record["samples"]),
            interval_ms=record["interval_ms"],
            seq=record["seq"],
            host_labels=record.get("host_labels", {}),
        )

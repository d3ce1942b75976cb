"""The Python shape of hoststream's Avro records.

Producers, stream processors and sinks work with these objects; only the codecs
in this package turn them into bytes and back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from hoststream.schemas.statistics import STATISTICS

__all__ = [
    "FAMILIES",
    "AlertEvent",
    "AlertState",
    "EventBatch",
    "EventValues",
    "MetricEvent",
    "MetricKind",
    "Sample",
    "WindowAggregate",
]

#: The metric families, each with its own topic ``metrics.<family>``.
FAMILIES = ("cpu", "memory", "disk", "network", "system")


class MetricKind(StrEnum):
    GAUGE = "GAUGE"
    COUNTER = "COUNTER"


# A dictionary lookup: calling the enum costs more than the rest of a
# sample's decoding (measured on the sinks' decoding of new hosts' events).
_KIND_BY_SYMBOL: dict[str, MetricKind] = {kind.value: kind for kind in MetricKind}


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement: a node_exporter-style name, its labels, value and kind."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    kind: MetricKind = MetricKind.GAUGE

    def to_avro(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "value": float(self.value),
            "labels": dict(self.labels),
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Sample:
        symbol = record["kind"]
        kind = _KIND_BY_SYMBOL.get(symbol) or MetricKind(symbol)  # raises for no kind
        return cls(record["name"], record["value"], record.get("labels", {}), kind)


def _millis(value: int | datetime) -> int:
    # fastavro decodes timestamp-millis to an aware datetime.
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
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
    #: The host's region (``HOSTSTREAM_REGION``); None in events from before regions.
    region: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "family": self.family,
            "timestamp_ms": self.timestamp_ms,
            "interval_ms": self.interval_ms,
            "seq": self.seq,
            "host_labels": dict(self.host_labels),
            "samples": [s.to_avro() for s in self.samples],
            "region": self.region,
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
            region=record.get("region"),
        )


@dataclass(frozen=True, slots=True)
class EventValues:
    """A metric event given as another event of the same series and this one's values.

    A host sends the same series (names, labels, kinds) in every event of a
    family; only the instant, the sequence number and the values change. A
    producer that knows that hands the template and the new values to the
    codecs, which write the event by its learned layout without building a
    :class:`Sample` per value.

    Attributes:
        template: an event of the same host, family and series (its own
            instant, sequence number and values are not used).
        timestamp_ms, seq: this event's.
        values: one per sample of ``template``, in its order.
    """

    template: MetricEvent
    timestamp_ms: int
    seq: int
    values: Sequence[float]

    def event(self) -> MetricEvent:
        """The event itself, with a :class:`Sample` per value."""
        samples = self.template.samples
        if len(samples) != len(self.values):
            raise ValueError(f"{len(self.values)} values for {len(samples)} samples")
        return replace(
            self.template,
            timestamp_ms=self.timestamp_ms,
            seq=self.seq,
            samples=tuple(
                Sample(s.name, value, s.labels, s.kind)
                for s, value in zip(samples, self.values, strict=True)
            ),
        )


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events of one instant given as their templates and all their values in one array.

    What :class:`EventValues` is for one event, for many: a source that sends
    the same events every tick gives the same ``templates`` tuple each time,
    so a codec can write the whole batch into bytes it laid out once, and a
    producer can check every value at once.

    Attributes:
        templates: per event, a template as in :class:`EventValues`.
        timestamp_ms: every event's instant.
        seqs: per event, its sequence number.
        values: every event's values one after the other, in the order of
            ``templates``: a float64 array (anything with the buffer protocol
            and ``len``; NumPy for a simulated fleet).
        ends: per event, where its values end in ``values`` (each starts
            where the previous ends).
    """

    templates: tuple[MetricEvent, ...]
    timestamp_ms: int
    seqs: Sequence[int]
    values: Any
    ends: Sequence[int]

    def __len__(self) -> int:
        return len(self.templates)

    def event_values(self) -> Iterator[EventValues]:
        """Each event of the batch as :class:`EventValues`, in order."""
        start = 0
        values = self.values.tolist() if hasattr(self.values, "tolist") else list(self.values)
        for template, seq, end in zip(self.templates, self.seqs, self.ends, strict=True):
            yield EventValues(template, self.timestamp_ms, seq, values[start:end])
            start = end


@dataclass(frozen=True, slots=True)
class WindowAggregate:
    """Statistics of one series over one window (``schemas/window_aggregate.avsc``).

    Timestamps are UTC milliseconds since the Unix epoch. For a ``COUNTER`` the
    statistics describe the raw totals and ``rate_per_second`` holds the rate.
    """

    host: str
    metric: str
    kind: MetricKind
    window_size_ms: int
    window_start: int
    window_end: int
    count: int
    sum: float
    min: float
    max: float
    mean: float
    last: float
    p50: float
    p90: float
    p95: float
    p99: float
    quantile_relative_error: float
    labels: Mapping[str, str] = field(default_factory=dict)
    rate_per_second: float | None = None
    #: The region whose stream processor computed it (the host's region); None
    #: in aggregates from before regions.
    region: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "metric": self.metric,
            "labels": dict(self.labels),
            "kind": self.kind.value,
            "window_size_ms": self.window_size_ms,
            "window_start": self.window_start,
            "window_end": self.window_end,
            **self.statistics(),
            "quantile_relative_error": float(self.quantile_relative_error),
            "region": self.region,
        }

    def statistics(self) -> dict[str, int | float | None]:
        """Every statistic by its field name (:data:`~hoststream.schemas.statistics.STATISTICS`)."""
        values: dict[str, int | float | None] = {}
        for stat in STATISTICS:
            value = getattr(self, stat.field)
            values[stat.field] = None if value is None else stat.python_type(value)
        return values

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> WindowAggregate:
        # An optional statistic (the rate) may be missing from the record.
        statistics: dict[str, Any] = {
            s.field: record.get(s.field) if s.optional else record[s.field] for s in STATISTICS
        }
        return cls(
            host=record["host"],
            metric=record["metric"],
            kind=MetricKind(record["kind"]),
            window_size_ms=record["window_size_ms"],
            window_start=_millis(record["window_start"]),
            window_end=_millis(record["window_end"]),
            quantile_relative_error=record["quantile_relative_error"],
            labels=record.get("labels", {}),
            region=record.get("region"),
            **statistics,
        )


class AlertState(StrEnum):
    FIRING = "FIRING"
    RESOLVED = "RESOLVED"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert starting or ending (``schemas/alert_event.avsc``).

    Timestamps are UTC milliseconds since the Unix epoch; ``ends_at`` is ``None``
    while the alert is firing.
    """

    dedup_key: str
    rule: str
    state: AlertState
    severity: str
    host: str
    metric: str
    value: float
    threshold: float
    starts_at: int
    window_end: int
    event_time: int
    ends_at: int | None = None
    series_labels: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: The region whose stream processor evaluated the rule; None in events from before regions.
    region: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "dedup_key": self.dedup_key,
            "rule": self.rule,
            "state": self.state.value,
            "severity": self.severity,
            "host": self.host,
            "metric": self.metric,
            "series_labels": dict(self.series_labels),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "value": float(self.value),
            "threshold": float(self.threshold),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "window_end": self.window_end,
            "event_time": self.event_time,
            "region": self.region,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> AlertEvent:
        ends_at = record.get("ends_at")
        return cls(
            dedup_key=record["dedup_key"],
            rule=record["rule"],
            state=AlertState(record["state"]),
            severity=record["severity"],
            host=record["host"],
            metric=record["metric"],
            value=record["value"],
            threshold=record["threshold"],
            starts_at=_millis(record["starts_at"]),
            window_end=_millis(record["window_end"]),
            event_time=_millis(record["event_time"]),
            ends_at=None if ends_at is None else _millis(ends_at),
            series_labels=record.get("series_labels", {}),
            labels=record.get("labels", {}),
            annotations=record.get("annotations", {}),
            region=record.get("region"),
        )

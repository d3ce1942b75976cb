"""How records become VictoriaMetrics series: names, labels, timestamps, validation.

Raw samples keep node_exporter's names and labels, plus ``instance="<host>"``
and ``job="hoststream"`` (docs/contract.md), and ``region="<region>"`` when the
record carries one (``HOSTSTREAM_REGION``). Aggregates follow Prometheus'
recording-rule naming, ``<metric>:<stat>_<window>``, e.g. ``node_load1:avg_1m``
or ``node_network_receive_bytes_total:rate_5m``, stamped at the window's end
as a recording rule evaluated then would be. docs/sinks.md lists the stats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hoststream.errors import InvalidRecordError
from hoststream.schemas import MetricEvent, WindowAggregate
from hoststream.schemas.statistics import STATISTICS
from hoststream.streams.windows import WindowSize

__all__ = [
    "AGGREGATE_STATS",
    "JOB",
    "TimeBounds",
    "aggregate_lines",
    "aggregate_series_name",
    "event_lines",
    "series_labels",
    "validate",
    "window_label",
]

JOB = "hoststream"

#: stat suffix -> WindowAggregate field. ``rate`` exists for counters only.
AGGREGATE_STATS: Mapping[str, str] = {s.series: s.field for s in STATISTICS}

Line = dict[str, Any]


class TimeBounds:
    """The timestamps VictoriaMetrics keeps.

    It drops samples outside its retention, or too far in the future, without
    an error; such records are dead-lettered instead of vanishing.

    Args:
        now_ms: the current time, UTC milliseconds.
        max_age_s: oldest accepted age; keep it inside ``-retentionPeriod``.
        max_future_s: how far ahead of ``now_ms`` clocks may run.
    """

    def __init__(self, now_ms: int, max_age_s: float, max_future_s: float) -> None:
        self.oldest_ms = now_ms - int(max_age_s * 1000)
        self.newest_ms = now_ms + int(max_future_s * 1000)

    def check(self, timestamp_ms: int, what: str) -> None:
        if not self.oldest_ms <= timestamp_ms <= self.newest_ms:
            raise InvalidRecordError(
                f"{what} {timestamp_ms} lies outside the accepted range"
                f" [{self.oldest_ms}, {self.newest_ms}] (VictoriaMetrics would drop it)"
            )


def window_label(window_size_ms: int) -> str:
    """``60000`` -> ``1m``, ``3600000`` -> ``1h``, ``90000`` -> ``90s``, ``1500`` -> ``1500ms``."""
    # The stream processor names its topics the same way: metrics.agg.<label>.
    return WindowSize(window_size_ms).label


def aggregate_series_name(metric: str, stat: str, window_size_ms: int) -> str:
    """``node_load1``, ``avg``, ``60000`` -> ``node_load1:avg_1m``."""
    return f"{metric}:{stat}_{window_label(window_size_ms)}"


def series_labels(host: str, region: str | None, *label_sets: Mapping[str, str]) -> dict[str, str]:
    """A series' labels: ``label_sets`` merged, then ``region``, ``instance`` and ``job``."""
    return merged_labels(target_labels(host, region), *label_sets)


def target_labels(host: str, region: str | None) -> dict[str, str]:
    """The labels naming the target, which no host or sample label may override."""
    # instance and job identify the target as Prometheus' scrape would, and
    # the region is the one the record carries.
    target = {"instance": host, "job": JOB}
    if region:
        target["region"] = region
    return target


def merged_labels(target: Mapping[str, str], *label_sets: Mapping[str, str]) -> dict[str, str]:
    """``label_sets`` merged, later ones winning, then ``target`` (:func:`target_labels`).

    Callers labelling many series of one target make ``target`` once.
    """
    labels: dict[str, str] = {}
    for label_set in label_sets:
        labels.update(label_set)
    labels.update(target)
    # An empty value means "no such label" in Prometheus.
    if "" in labels.values():
        return {k: v for k, v in labels.items() if v != ""}
    return labels


def event_lines(event: MetricEvent) -> list[Line]:
    """One ``/api/v1/import`` line per sample of ``event``."""
    return [
        {
            "metric": {
                "__name__": sample.name,
                **series_labels(event.host, event.region, event.host_labels, sample.labels),
            },
            "values": [sample.value],
            "timestamps": [event.timestamp_ms],
        }
        for sample in event.samples
    ]


def aggregate_lines(aggregate: WindowAggregate) -> list[Line]:
    """One line per statistic of ``aggregate``, stamped at the window's end."""
    labels = series_labels(aggregate.host, aggregate.region, aggregate.labels)
    lines: list[Line] = []
    for stat, field_name in AGGREGATE_STATS.items():
        value = getattr(aggregate, field_name)
        if value is None:  # rate of a gauge, or of a window with one sample
            continue
        name = aggregate_series_name(aggregate.metric, stat, aggregate.window_size_ms)
        lines.append(
            {
                "metric": {"__name__": name, **labels},
                "values": [float(value)],
                "timestamps": [aggregate.window_end],
            }
        )
    return lines


def validate(record: MetricEvent | WindowAggregate, bounds: TimeBounds) -> None:
    """Raise :class:`InvalidRecordError` if VictoriaMetrics would drop ``record``'s samples.

    It drops, without an error, samples outside its retention or too far
    ahead of its clock. The rest of what it would refuse or drop (names,
    labels, values that are not finite, windows) is the validation contract's
    (:mod:`hoststream.schemas.validation`), which the sink's consumer applies
    to every record before the sink's own check.
    """
    if isinstance(record, MetricEvent):
        bounds.check(record.timestamp_ms, "timestamp_ms")
    else:
        bounds.check(record.window_end, "window_end")

"""The window state of one host's metric family, as kept in a Faust table.

One :class:`FamilyState` per (host, family) holds everything needed to go on
after a restart: the event-time watermark, how far windows are closed, the
samples of the open windows of the smallest size ("panes"), and the merged
summaries of the open larger windows. It serializes to canonical JSON bytes,
so equal states are equal bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hoststream.schemas.records import MetricKind
from hoststream.streams.summary import Summary

__all__ = ["FamilyState", "Pane", "Rollup", "SeriesKey", "series_key"]

#: A series within one host: metric name and its labels, sorted.
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def series_key(metric: str, labels: Mapping[str, str]) -> SeriesKey:
    return metric, tuple(sorted(labels.items()))


@dataclass(slots=True)
class Pane:
    """An open window of the smallest size: each series' samples, by timestamp.

    Samples are kept (not yet summarized) so that one delivered twice replaces
    itself, and so the summary is computed in timestamp order whatever order
    samples arrived in: both make the result independent of redelivery.
    """

    points: dict[SeriesKey, dict[int, float]] = field(default_factory=dict)
    kinds: dict[SeriesKey, MetricKind] = field(default_factory=dict)

    def to_json(self) -> list[Any]:
        return [
            [key[0], [list(kv) for kv in key[1]], self.kinds[key].value, sorted(pts.items())]
            for key, pts in sorted(self.points.items())
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> Pane:
        pane = cls()
        for metric, labels, kind, points in data:
            key: SeriesKey = (metric, tuple((str(k), str(v)) for k, v in labels))
            pane.points[key] = {int(ts): float(v) for ts, v in points}
            pane.kinds[key] = MetricKind(kind)
        return pane


@dataclass(slots=True)
class Rollup:
    """An open larger window: the merged summaries of its closed panes.

    ``panes`` lists the starts of the panes merged so far; a pane merged again
    after a restart is recognised and skipped.
    """

    panes: list[int] = field(default_factory=list)
    series: dict[SeriesKey, tuple[MetricKind, Summary]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "panes": sorted(self.panes),
            "series": [
                [key[0], [list(kv) for kv in key[1]], kind.value, summary.to_json()]
                for key, (kind, summary) in sorted(self.series.items())
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rollup:
        rollup = cls(panes=[int(p) for p in data["panes"]])
        for metric, labels, kind, summary in data["series"]:
            key: SeriesKey = (metric, tuple((str(k), str(v)) for k, v in labels))
            rollup.series[key] = (MetricKind(kind), Summary.from_json(summary))
        return rollup


@dataclass(slots=True)
class FamilyState:
    """Open windows and progress of one (host, family).

    Attributes:
        watermark: the latest event time seen, ms; None before the first event.
        closed_until: every window ending at or before this is closed; samples
            earlier than it are late.
        interval_ms: the collection interval the host last announced.
        panes: open smallest windows by start.
        rollups: open larger windows by size, then start.
        alerts: the rule engine's state by alert dedup key (see
            :mod:`streams.rules.engine`), kept here so that it is written to
            the changelog together with the windows it was derived from.
    """

    host: str
    family: str
    watermark: int | None = None
    closed_until: int | None = None
    interval_ms: int = 10_000
    panes: dict[int, Pane] = field(default_factory=dict)
    rollups: dict[int, dict[int, Rollup]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        data = {
            "v": 1,
            "host": self.host,
            "family": self.family,
            "wm": self.watermark,
            "closed": self.closed_until,
            "interval": self.interval_ms,
            "panes": [[start, pane.to_json()] for start, pane in sorted(self.panes.items())],
            "rollups": [
                [size, start, rollup.to_json()]
                for size, by_start in sorted(self.rollups.items())
                for start, rollup in sorted(by_start.items())
            ],
            "alerts": self.alerts,
        }
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> FamilyState:
        data = json.loads(raw)
        if data.get("v") != 1:
            raise ValueError(f"unknown window state version {data.get('v')!r}")
        state = cls(
            host=data["host"],
            family=data["family"],
            watermark=data["wm"],
            closed_until=data["closed"],
            interval_ms=data["interval"],
            alerts=data.get("alerts", {}),
        )
        state.panes = {int(start): Pane.from_json(pane) for start, pane in data["panes"]}
        for size, start, rollup in data["rollups"]:
            state.rollups.setdefault(int(size), {})[int(start)] = Rollup.from_json(rollup)
        return state

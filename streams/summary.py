"""What one series did in one window: the statistics a :class:`WindowAggregate` reports.

A :class:`Summary` is built from a window's samples, and summaries of adjacent
windows merge into the summary of the window that spans them (a rollup):
count, sum, min, max, first and last exactly, quantiles through the merged
sketch, and the counter increase including the step across the boundary.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hoststream.schemas.records import MetricKind, WindowAggregate
from hoststream.streams.sketch import DEFAULT_RELATIVE_ACCURACY, QuantileSketch

__all__ = ["Summary", "counter_increase"]


def counter_increase(previous: float, current: float) -> float:
    """How much a counter grew from ``previous`` to ``current``.

    A decrease means the counter was reset (the process or host restarted), so
    it counted from 0 up to ``current`` since: the increase is ``current``.
    """
    return current - previous if current >= previous else current


@dataclass(slots=True)
class Summary:
    """Statistics of one series over one window, mergeable with its neighbours'.

    ``increase`` is the counter growth between the first and the last sample,
    resets taken into account; it is kept for gauges too but reported only for
    counters, as a rate.
    """

    count: int
    sum: float
    min: float
    max: float
    first_ts: int
    first_value: float
    last_ts: int
    last_value: float
    increase: float
    sketch: QuantileSketch

    @classmethod
    def of_points(
        cls,
        points: Sequence[tuple[int, float]],
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
    ) -> Summary:
        """The summary of ``(timestamp_ms, value)`` points, at least one, in any order.

        Points are taken in timestamp order, so the result does not depend on the
        order they arrived in.
        """
        if not points:
            raise ValueError("a summary needs at least one point")
        ordered = sorted(points)
        values = [v for _, v in ordered]
        sketch = QuantileSketch(relative_accuracy)
        sketch.extend(values)
        increase = math.fsum(counter_increase(a, b) for a, b in itertools.pairwise(values))
        return cls(
            count=len(values),
            # fsum: correctly rounded whatever the values, so the reference a
            # test computes the same way agrees to the last bit.
            sum=math.fsum(values),
            min=min(values),
            max=max(values),
            first_ts=ordered[0][0],
            first_value=values[0],
            last_ts=ordered[-1][0],
            last_value=values[-1],
            increase=increase,
            sketch=sketch,
        )

    def merged(self, other: Summary) -> Summary:
        """The summary of both windows; they must not overlap in time.

        The earlier one's last value and the later one's first value are
        consecutive samples, so the counter step between them is added.
        """
        early, late = (self, other) if self.first_ts <= other.first_ts else (other, self)
        sketch = early.sketch.copy()
        sketch.merge(late.sketch)
        return Summary(
            count=early.count + late.count,
            sum=early.sum + late.sum,
            min=min(early.min, late.min),
            max=max(early.max, late.max),
            first_ts=early.first_ts,
            first_value=early.first_value,
            last_ts=late.last_ts,
            last_value=late.last_value,
            increase=early.increase
            + counter_increase(early.last_value, late.first_value)
            + late.increase,
            sketch=sketch,
        )

    def rate_per_second(self) -> float | None:
        """Counter increase per second between the first and last sample; None below two."""
        if self.count < 2 or self.last_ts <= self.first_ts:
            return None
        return self.increase * 1000.0 / (self.last_ts - self.first_ts)

    def quantile(self, q: float) -> float:
        estimate = self.sketch.quantile(q)
        assert estimate is not None  # a summary holds at least one value
        # The true quantile lies in [min, max]; clamping only moves the estimate
        # closer to it, and keeps p99 <= max as readers expect.
        return min(max(estimate, self.min), self.max)

    def to_aggregate(
        self,
        *,
        host: str,
        metric: str,
        labels: Mapping[str, str],
        kind: MetricKind,
        window_size_ms: int,
        window_start: int,
        region: str | None = None,
    ) -> WindowAggregate:
        return WindowAggregate(
            host=host,
            metric=metric,
            kind=kind,
            window_size_ms=window_size_ms,
            window_start=window_start,
            window_end=window_start + window_size_ms,
            count=self.count,
            sum=self.sum,
            min=self.min,
            max=self.max,
            mean=self.sum / self.count,
            last=self.last_value,
            p50=self.quantile(0.50),
            p90=self.quantile(0.90),
            p95=self.quantile(0.95),
            p99=self.quantile(0.99),
            quantile_relative_error=self.sketch.relative_accuracy,
            labels=dict(labels),
            rate_per_second=self.rate_per_second() if kind is MetricKind.COUNTER else None,
            region=region,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "c": self.count,
            "s": self.sum,
            "lo": self.min,
            "hi": self.max,
            "t0": self.first_ts,
            "v0": self.first_value,
            "t1": self.last_ts,
            "v1": self.last_value,
            "inc": self.increase,
            "sk": self.sketch.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Summary:
        return cls(
            count=int(data["c"]),
            sum=float(data["s"]),
            min=float(data["lo"]),
            max=float(data["hi"]),
            first_ts=int(data["t0"]),
            first_value=float(data["v0"]),
            last_ts=int(data["t1"]),
            last_value=float(data["v1"]),
            increase=float(data["inc"]),
            sketch=QuantileSketch.from_json(data["sk"]),
        )

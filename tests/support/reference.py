"""An independent reference for window aggregates: plain lists, no sketches, no state."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

Point = tuple[int, float]


@dataclass(frozen=True)
class Expected:
    count: int
    sum: float
    min: float
    max: float
    mean: float
    last: float
    quantiles: dict[str, float]
    rate_per_second: float | None


def exact_quantile(values: list[float], q: float) -> float:
    """The order statistic DDSketch estimates: sorted(values)[floor(q * (n - 1))]."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def counter_rate(points: list[Point]) -> float | None:
    ordered = sorted(points)
    if len(ordered) < 2 or ordered[-1][0] == ordered[0][0]:
        return None
    increase = 0.0
    for (_, before), (_, after) in itertools.pairwise(ordered):
        increase += after - before if after >= before else after
    return increase * 1000 / (ordered[-1][0] - ordered[0][0])


def expected(points: list[Point], counter: bool = False) -> Expected:
    ordered = sorted(points)
    values = [v for _, v in ordered]
    total = math.fsum(values)
    return Expected(
        count=len(values),
        sum=total,
        min=min(values),
        max=max(values),
        mean=total / len(values),
        last=ordered[-1][1],
        quantiles={f"p{round(q * 100)}": exact_quantile(values, q) for q in (0.5, 0.9, 0.95, 0.99)},
        rate_per_second=counter_rate(ordered) if counter else None,
    )


def windows_of(points: list[Point], size_ms: int) -> dict[int, list[Point]]:
    out: dict[int, list[Point]] = {}
    for ts, value in points:
        out.setdefault(ts - ts % size_ms, []).append((ts, value))
    return out

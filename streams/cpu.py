"""CPU utilisation derived from node_exporter's ``node_cpu_seconds_total``.

``node_cpu_seconds_total{cpu,mode}`` counts the seconds each CPU spent in each
mode. Its per-second rate is already the fraction of time in that mode (a
window's aggregate carries it as ``rate_per_second``). Utilisation is the busy
share over the window:

    busy(cpu) = 1 - rate(idle) / sum over modes of rate(mode)

Dividing by the sum of the mode rates, rather than by 1, keeps the ratio in
[0, 1] when the kernel's tick accounting drifts from wall time. ``iowait``
counts as busy, as in the usual ``1 - rate(idle)`` dashboards. The host-wide
ratio sums the rates over all CPUs before dividing, so every CPU weighs the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hoststream.schemas.records import MetricKind, WindowAggregate
from hoststream.schemas.statistics import STATISTIC_FIELDS
from hoststream.streams.state import SeriesKey
from hoststream.streams.summary import Summary

__all__ = ["CPU_BUSY_RATIO", "CPU_SECONDS", "cpu_busy_aggregates"]

CPU_SECONDS = "node_cpu_seconds_total"
#: Derived gauge: ``{cpu="N"}`` per CPU, no labels for the whole host.
CPU_BUSY_RATIO = "hoststream_cpu_busy_ratio"


def _busy(idle: float, total: float) -> float:
    return min(1.0, max(0.0, 1.0 - idle / total))


def _one_value(value: float) -> dict[str, Any]:
    # One exact value: every statistic is that value, but the count and the rate.
    return {**dict.fromkeys(STATISTIC_FIELDS, value), "count": 1, "rate_per_second": None}


def cpu_busy_aggregates(
    host: str,
    series: Mapping[SeriesKey, tuple[MetricKind, Summary]],
    *,
    window_size_ms: int,
    window_start: int,
) -> list[WindowAggregate]:
    """Busy ratios of one closed window, per CPU and for the host, as aggregates.

    A ratio is one number per window, so its aggregate has ``count`` 1 and every
    statistic equal to it. CPUs without an idle rate (fewer than two samples in
    the window) are left out.
    """
    idle: dict[str, float] = {}
    total: dict[str, float] = {}
    # Sorted: float sums must not depend on the order the series arrived in.
    for (metric, labels), (kind, summary) in sorted(series.items()):
        if metric != CPU_SECONDS or kind is not MetricKind.COUNTER:
            continue
        label_map = dict(labels)
        rate = summary.rate_per_second()
        cpu = label_map.get("cpu")
        if rate is None or cpu is None:
            continue
        total[cpu] = total.get(cpu, 0.0) + rate
        if label_map.get("mode") == "idle":
            idle[cpu] = rate
    ratios: list[tuple[dict[str, str], float]] = []
    usable = sorted(cpu for cpu in idle if total[cpu] > 0)
    for cpu in usable:
        ratios.append(({"cpu": cpu}, _busy(idle[cpu], total[cpu])))
    if usable:
        host_total = sum(total[cpu] for cpu in usable)
        ratios.append(({}, _busy(sum(idle[cpu] for cpu in usable), host_total)))
    return [
        WindowAggregate(
            host=host,
            metric=CPU_BUSY_RATIO,
            kind=MetricKind.GAUGE,
            window_size_ms=window_size_ms,
            window_start=window_start,
            window_end=window_start + window_size_ms,
            quantile_relative_error=0.0,
            labels=labels,
            **_one_value(value),
        )
        for labels, value in ratios
    ]

"""One example of each Avro record, every field set, for the codec, validation and sink tests."""

from __future__ import annotations

from hoststream.schemas import (
    AlertEvent,
    AlertState,
    MetricEvent,
    MetricKind,
    Sample,
    WindowAggregate,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def metric_event() -> MetricEvent:
    return MetricEvent(
        host="web-1",
        family="cpu",
        timestamp_ms=T0,
        interval_ms=10_000,
        seq=42,
        host_labels={"region": "eu-west", "role": "web"},
        samples=(
            Sample(
                "node_cpu_seconds_total", 1234.56, {"cpu": "0", "mode": "user"}, MetricKind.COUNTER
            ),
            Sample(
                "node_cpu_seconds_total", 7.25, {"cpu": "0", "mode": "iowait"}, MetricKind.COUNTER
            ),
            Sample("node_load1", 0.5),
        ),
    )


def window_aggregate(*, counter: bool = True) -> WindowAggregate:
    return WindowAggregate(
        host="web-1",
        metric="node_cpu_seconds_total" if counter else "node_load1",
        labels={"cpu": "0", "mode": "user"} if counter else {},
        kind=MetricKind.COUNTER if counter else MetricKind.GAUGE,
        window_size_ms=60_000,
        window_start=T0,
        window_end=T0 + 60_000,
        count=6,
        sum=7410.0,
        min=1230.0,
        max=1240.0,
        mean=1235.0,
        last=1240.0,
        p50=1235.2,
        p90=1239.1,
        p95=1239.6,
        p99=1239.9,
        quantile_relative_error=0.01,
        rate_per_second=0.1875 if counter else None,
    )


def alert_event(*, resolved: bool = False) -> AlertEvent:
    return AlertEvent(
        dedup_key="HighLoad/web-1/node_load1/4f2a",
        rule="HighLoad",
        state=AlertState.RESOLVED if resolved else AlertState.FIRING,
        severity="warning",
        host="web-1",
        metric="node_load1",
        value=1.5 if resolved else 9.75,
        threshold=8.0,
        starts_at=T0,
        ends_at=T0 + 300_000 if resolved else None,
        window_end=T0 + 300_000 if resolved else T0,
        event_time=T0 + 300_500 if resolved else T0 + 500,
        series_labels={},
        labels={"team": "web", "severity": "warning"},
        annotations={
            "summary": "load above 8 on web-1",
            "runbook_url": "https://runbooks/high-load",
        },
    )

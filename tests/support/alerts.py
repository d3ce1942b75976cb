"""Alert events for the alert-routing tests (unit and integration)."""

from __future__ import annotations

from hoststream.schemas import AlertEvent, AlertState

#: 2026-11-27T14:00:00.000Z
STARTS_AT = 1_795_788_000_000
#: Routing keys are 32 characters; these are made up and easy to spot in output.
PD_KEY = "R0uT1nGkEyS3cReT0000000000000042"
GENIE_KEY = "g3n1e-k3y-s3cr3t-0000-000000000042"


def firing(
    key: str = "HighLoad/web-1/node_load1",
    severity: str = "critical",
    host: str = "web-1",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> AlertEvent:
    return AlertEvent(
        dedup_key=key,
        rule="HighLoad",
        state=AlertState.FIRING,
        severity=severity,
        host=host,
        metric="node_load1",
        value=12.5,
        threshold=8.0,
        starts_at=STARTS_AT,
        window_end=STARTS_AT,
        event_time=STARTS_AT + 1_000,
        labels={"team": "web"} if labels is None else labels,
        annotations=(
            {
                "summary": f"Load 12.5 on {host}",
                "description": "node_load1 above 8 for 1m",
                "runbook_url": "https://runbooks.example.com/high-load",
            }
            if annotations is None
            else annotations
        ),
    )


def resolved(alert: AlertEvent, ends_at: int = STARTS_AT + 600_000) -> AlertEvent:
    return AlertEvent(
        dedup_key=alert.dedup_key,
        rule=alert.rule,
        state=AlertState.RESOLVED,
        severity=alert.severity,
        host=alert.host,
        metric=alert.metric,
        value=3.0,
        threshold=alert.threshold,
        starts_at=alert.starts_at,
        window_end=ends_at,
        event_time=ends_at + 1_000,
        ends_at=ends_at,
        series_labels=alert.series_labels,
        labels=alert.labels,
        annotations=alert.annotations,
    )

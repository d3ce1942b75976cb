"""Response bodies of the API (they make up the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "AggregateOut",
    "AggregatePage",
    "AlertOut",
    "AlertPage",
    "Health",
    "HostOut",
    "LatestSample",
    "LatestValues",
]


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when a dependency does not answer")
    checks: dict[str, str] = Field(description="each dependency: ok, or why it failed")


class HostOut(BaseModel):
    host: str
    last_seen: float = Field(description="Unix seconds of the host's newest raw sample")


class LatestSample(BaseModel):
    name: str
    labels: dict[str, str]
    value: float
    timestamp: float = Field(description="Unix seconds of the sample")


class LatestValues(BaseModel):
    host: str
    family: str
    samples: list[LatestSample]


class AggregateOut(BaseModel):
    host: str
    metric: str
    labels: dict[str, str]
    window: str
    window_start: int = Field(description="UTC milliseconds")
    window_end: int = Field(description="UTC milliseconds")
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
    rate_per_second: float | None = None


class AggregatePage(BaseModel):
    items: list[AggregateOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class AlertOut(BaseModel):
    dedup_key: str
    rule: str
    state: str
    severity: str
    host: str
    metric: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    threshold: float
    starts_at: int = Field(description="UTC milliseconds")
    ends_at: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None

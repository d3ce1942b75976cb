"""Response bodies of the API (they make up the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, create_model

from hoststream.schemas.statistics import STATISTICS

__all__ = [
    "UTC_MS",
    "AggregateOut",
    "AggregatePage",
    "AggregateWindow",
    "AlertOut",
    "AlertPage",
    "Health",
    "HostOut",
    "LatestSample",
    "LatestValues",
]


#: Every instant in the API's JSON, in one unit and one form: integer UTC
#: milliseconds since the Unix epoch, the unit of the Kafka records and of the
#: ``start``/``end`` query parameters. (The PromQL pass-through endpoints answer
#: in VictoriaMetrics' own form, seconds, as Prometheus' HTTP API does.)
UTC_MS = "UTC milliseconds since the Unix epoch (integer)"
UnixMs = Annotated[int, Field(ge=0, description=UTC_MS, examples=[1_764_590_400_000])]


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when a dependency does not answer")
    checks: dict[str, str] = Field(description="each dependency: ok, or why it failed")


class HostOut(BaseModel):
    host: str
    last_seen: UnixMs = Field(description=f"the host's newest raw sample; {UTC_MS}")


class LatestSample(BaseModel):
    name: str
    labels: dict[str, str]
    value: float
    timestamp: UnixMs = Field(description=f"when the sample's value was read; {UTC_MS}")


class LatestValues(BaseModel):
    host: str
    family: str
    samples: list[LatestSample]


class AggregateWindow(BaseModel):
    """Which series and window an aggregate describes; :data:`AggregateOut` adds the statistics."""

    host: str
    metric: str
    labels: dict[str, str]
    window: str
    window_start: UnixMs = Field(description=f"the window's first instant; {UTC_MS}")
    window_end: UnixMs = Field(description=f"the instant after the window's last; {UTC_MS}")


def _statistic_fields() -> dict[str, Any]:
    # (type, default) as create_model takes them; only an optional one may be null.
    return {
        stat.field: (stat.python_type | None, None) if stat.optional else (stat.python_type, ...)
        for stat in STATISTICS
    }


#: One window aggregate: :class:`AggregateWindow` and every statistic, in their one order.
AggregateOut = create_model(
    "AggregateOut",
    __base__=AggregateWindow,
    __module__=__name__,
    **_statistic_fields(),
)


class AggregatePage(BaseModel):
    items: list[AggregateOut]  # type: ignore[valid-type]  # a model built by create_model
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
    starts_at: UnixMs = Field(description=f"when the alert started firing; {UTC_MS}")
    ends_at: UnixMs | None = Field(
        default=None, description=f"when it resolved; null while firing; {UTC_MS}"
    )
    extra: dict[str, Any] = Field(default_factory=dict)


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None

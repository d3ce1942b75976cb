"""What an alert rule says, validated: one :class:`Rule` per entry of a rule file."""

from __future__ import annotations

import operator
import string
from collections.abc import Callable, Mapping
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hoststream.schemas.records import WindowAggregate
from hoststream.schemas.statistics import STATISTICS
from hoststream.streams.windows import WindowSize

__all__ = ["AGGREGATES", "COMPARISONS", "Rule", "RuleSet", "Selector"]

Aggregate = Literal[
    "count", "sum", "min", "max", "mean", "last", "p50", "p90", "p95", "p99", "rate"
]
Comparison = Literal[">", ">=", "<", "<=", "==", "!="]
Severity = Literal["critical", "error", "warning", "info"]

AGGREGATES: tuple[str, ...] = get_args(Aggregate)
# A rule names a statistic by its short name (``rate``), the record by its field.
_FIELD_OF = {stat.name: stat.field for stat in STATISTICS}
COMPARISONS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_FORMATTER = string.Formatter()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Selector(_Frozen):
    """Which window aggregates a rule looks at.

    ``labels`` must all be present on the series with these values; series
    labels not named here may be anything. As in Prometheus, an empty value
    selects series without that label (``cpu: ""`` picks the host-wide
    ``hoststream_cpu_busy_ratio``, not the per-CPU ones).
    """

    metric: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    window: str = "1m"

    @field_validator("window")
    @classmethod
    def _window_is_a_size(cls, value: str) -> str:
        WindowSize.parse(value)
        return value

    @property
    def window_ms(self) -> int:
        return WindowSize.parse(self.window).ms

    def matches(self, aggregate: WindowAggregate) -> bool:
        return aggregate.window_size_ms == self.window_ms and self.selects(
            aggregate.metric, aggregate.labels
        )

    def selects(self, metric: str, labels: Mapping[str, str]) -> bool:
        """Whether a series of this metric and labels is selected, whatever its window."""
        return metric == self.metric and all(labels.get(k, "") == v for k, v in self.labels.items())


class Rule(_Frozen):
    """One alert rule: a threshold on an aggregate, or the absence of data.

    A threshold rule fires when ``<aggregate> <comparison> <threshold>`` holds
    in ``for`` consecutive closed windows, and resolves at the first window in
    which ``<aggregate> <comparison> <clear_threshold>`` no longer holds. With
    a clear threshold below a ``>`` threshold (above a ``<`` one) the alert
    does not flap around the threshold. A ``nodata`` rule fires when a host
    that reported the selected metric has closed no window of it for ``for``
    window lengths, and resolves when one arrives.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    selector: Selector
    nodata: bool = False
    aggregate: Aggregate | None = None
    comparison: Comparison | None = None
    threshold: float | None = None
    clear_threshold: float | None = None
    for_windows: int = Field(default=1, ge=1, le=10_000, alias="for")
    severity: Severity = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("annotations")
    @classmethod
    def _templates_parse(cls, value: dict[str, str]) -> dict[str, str]:
        for key, template in value.items():
            try:
                list(_FORMATTER.parse(template))
            except ValueError as exc:
                raise ValueError(f"annotation {key!r} is not a valid template: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        condition = (self.aggregate, self.comparison, self.threshold)
        if self.nodata:
            if any(c is not None for c in (*condition, self.clear_threshold)):
                raise ValueError(
                    "a nodata rule takes no aggregate, comparison, threshold or clear_threshold"
                )
            return self
        if any(c is None for c in condition):
            raise ValueError("a threshold rule needs aggregate, comparison and threshold")
        clear, threshold = self.clear_threshold, self.threshold
        if clear is not None and threshold is not None:
            if self.comparison in (">", ">=") and clear > threshold:
                raise ValueError(f"clear_threshold {clear} must not exceed threshold {threshold}")
            if self.comparison in ("<", "<=") and clear < threshold:
                raise ValueError(f"clear_threshold {clear} must not be below threshold {threshold}")
            if self.comparison in ("==", "!=") and clear != threshold:
                raise ValueError(f"{self.comparison} takes no clear_threshold")
        return self

    def value_of(self, aggregate: WindowAggregate) -> float | None:
        """The number the rule compares: the chosen field; None when the window has none."""
        value = getattr(aggregate, _FIELD_OF[str(self.aggregate)])
        return None if value is None else float(value)

    def breaches(self, value: float) -> bool:
        assert self.comparison is not None
        assert self.threshold is not None
        return COMPARISONS[self.comparison](value, self.threshold)

    def still_breaches(self, value: float) -> bool:
        """While firing: does the value stay beyond the clear threshold?"""
        assert self.comparison is not None
        assert self.threshold is not None
        clear = self.threshold if self.clear_threshold is None else self.clear_threshold
        return COMPARISONS[self.comparison](value, clear)


class RuleSet(_Frozen):
    """The contents of a rule file: ``rules:``, a list of :class:`Rule`."""

    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_unique(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}")
            seen.add(rule.name)
        return self

"""Evaluating alert rules on closed windows: FIRING and RESOLVED events.

The engine keeps its memory (streaks, what is firing, when each series last
reported) in :attr:`FamilyState.alerts <streams.state.FamilyState.alerts>`,
the same record as the windows it judged, so one write to the Faust table
stores both and a restart neither repeats nor skips a transition. Event
times are window ends, never the wall clock, so a transition repeated after
a crash is the identical record.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hoststream.schemas.records import AlertEvent, AlertState, WindowAggregate
from hoststream.streams.rules.model import Rule, RuleSet
from hoststream.streams.state import FamilyState
from hoststream.streams.windows import WindowSize

__all__ = ["RuleEngine", "dedup_key"]


def dedup_key(rule: str, host: str, metric: str, labels: Mapping[str, str]) -> str:
    """``<rule>/<host>/<16 hex digits>``: one alert's key in all its events, readable in logs."""
    identity = json.dumps([rule, host, metric, sorted(labels.items())], separators=(",", ":"))
    return f"{rule}/{host}/{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


class _Context(dict[str, Any]):
    """Template values; an unknown ``{placeholder}`` stays as it is instead of failing."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _render(templates: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    # str.format_map, so "{value:.1%}" works; a template that still fails
    # (a format spec on a missing label) is passed on unrendered, not dropped.
    context = _Context(values)
    out = {}
    for name, template in templates.items():
        try:
            out[name] = template.format_map(context)
        except (ValueError, KeyError, IndexError, AttributeError):
            out[name] = template
    return out


class RuleEngine:
    """Applies a rule set to closed windows and to the silence of hosts."""

    def __init__(
        self, rules: RuleSet | Iterable[Rule], *, grace_ms: int, region: str | None = None
    ) -> None:
        """Prepare the rules.

        Args:
            rules: the rules, e.g. from :func:`streams.rules.load_rules`.
            grace_ms: the window grace period; a nodata rule waits for it on
                top of its ``for`` windows, as a window closes only then.
            region: the region every alert event carries (``HOSTSTREAM_REGION``).
        """
        self.rules = list(rules.rules if isinstance(rules, RuleSet) else rules)
        self.grace_ms = grace_ms
        self.region = region
        self._by_name = {rule.name: rule for rule in self.rules}

    def windows_needed(self) -> set[int]:
        """The window sizes (ms) the rules select; the processor must produce them."""
        return {rule.selector.window_ms for rule in self.rules}

    def evaluate(
        self, state: FamilyState, aggregates: Sequence[WindowAggregate]
    ) -> list[AlertEvent]:
        """Judge closed windows, in the order they closed; update ``state.alerts``."""
        # Memory of rules no longer configured would otherwise stay forever.
        for key in [k for k, m in state.alerts.items() if m.get("rule") not in self._by_name]:
            del state.alerts[key]
        events: list[AlertEvent] = []
        for aggregate in aggregates:
            for rule in self.rules:
                if rule.selector.matches(aggregate):
                    if rule.nodata:
                        events += self._saw_data(state, rule, aggregate)
                    else:
                        events += self._judge(state, rule, aggregate)
        return events

    def _judge(self, state: FamilyState, rule: Rule, agg: WindowAggregate) -> list[AlertEvent]:
        value = rule.value_of(agg)
        if value is None or not math.isfinite(value):
            return []
        key = dedup_key(rule.name, agg.host, agg.metric, agg.labels)
        fresh = {"rule": rule.name, "n": 0, "firing": False, "since": None, "end": None}
        memory = state.alerts.get(key, fresh)
        end = memory["end"]
        if end is not None and agg.window_end <= end:
            return []  # judged already
        if end is not None and agg.window_start > end:
            memory["n"] = 0  # a missing window breaks the streak
        memory["end"] = agg.window_end
        events = []
        if memory["firing"]:
            if not rule.still_breaches(value):
                events.append(
                    self._event(
                        rule,
                        agg=agg,
                        key=key,
                        transition=AlertState.RESOLVED,
                        value=value,
                        memory=memory,
                    )
                )
                memory.update(n=0, firing=False, since=None)
        else:
            memory["n"] = memory["n"] + 1 if rule.breaches(value) else 0
            if memory["n"] >= rule.for_windows:
                memory.update(firing=True, since=agg.window_end)
                events.append(
                    self._event(
                        rule,
                        agg=agg,
                        key=key,
                        transition=AlertState.FIRING,
                        value=value,
                        memory=memory,
                    )
                )
        if memory["firing"] or memory["n"]:
            state.alerts[key] = memory
        else:
            # Nothing to remember: keeps the state small for the many healthy series.
            state.alerts.pop(key, None)
        return events

    def _event(
        self,
        rule: Rule,
        *,
        agg: WindowAggregate,
        key: str,
        transition: AlertState,
        value: float,
        memory: Mapping[str, Any],
    ) -> AlertEvent:
        return self._alert(
            rule,
            key=key,
            host=agg.host,
            metric=agg.metric,
            series_labels=agg.labels,
            transition=transition,
            value=value,
            threshold=float(rule.threshold if rule.threshold is not None else rule.for_windows),
            starts_at=int(memory["since"]),
            at=agg.window_end,
        )

    def _alert(
        self,
        rule: Rule,
        *,
        key: str,
        host: str,
        metric: str,
        series_labels: Mapping[str, str],
        transition: AlertState,
        value: float,
        threshold: float,
        starts_at: int,
        at: int,
    ) -> AlertEvent:
        labels = {
            **series_labels,
            **rule.labels,
            "alertname": rule.name,
            "instance": host,
            "severity": rule.severity,
        }
        context: dict[str, Any] = {
            **series_labels,
            "rule": rule.name,
            "host": host,
            "metric": metric,
            "value": value,
            "threshold": threshold,
            "window": WindowSize(rule.selector.window_ms).label,
            "severity": rule.severity,
        }
        return AlertEvent(
            dedup_key=key,
            rule=rule.name,
            state=transition,
            severity=rule.severity,
            host=host,
            metric=metric,
            value=value,
            threshold=threshold,
            starts_at=starts_at,
            window_end=at,
            event_time=at,
            ends_at=at if transition is AlertState.RESOLVED else None,
            series_labels=dict(series_labels),
            labels=labels,
            annotations=_render(rule.annotations, context),
            region=self.region,
        )

    def _saw_data(self, state: FamilyState, rule: Rule, agg: WindowAggregate) -> list[AlertEvent]:
        key = dedup_key(rule.name, agg.host, agg.metric, {})
        fresh = {"rule": rule.name, "nodata": True, "firing": False, "since": None}
        memory = state.alerts.get(key, fresh)
        events = []
        if memory["firing"]:
            events.append(
                self._alert(
                    rule,
                    key=key,
                    host=agg.host,
                    metric=agg.metric,
                    series_labels={},
                    transition=AlertState.RESOLVED,
                    value=0.0,
                    threshold=float(rule.for_windows),
                    starts_at=int(memory["since"]),
                    at=agg.window_end,
                )
            )
            memory.update(firing=False, since=None)
        memory["end"] = max(agg.window_end, memory.get("end") or agg.window_end)
        memory["metric"] = agg.metric
        state.alerts[key] = memory
        return events

    def _silent_since(self, rule: Rule, memory: Mapping[str, Any]) -> int:
        """When a host whose last window ended at ``memory["end"]`` counts as silent."""
        return int(memory["end"]) + rule.for_windows * rule.selector.window_ms

    def check_nodata(self, state: FamilyState, now_ms: int) -> list[AlertEvent]:
        """Fire nodata rules whose host has been silent for their ``for`` windows.

        Call it with the wall clock, for a host that is quiet (see
        :meth:`~streams.aggregator.WindowAggregator.quiet_after_ms`).
        """
        events = []
        for key, memory in sorted(state.alerts.items()):
            rule = self._by_name.get(memory.get("rule", ""))
            if rule is None or not memory.get("nodata") or memory["firing"]:
                continue
            silent_since = self._silent_since(rule, memory)
            if now_ms < silent_since + self.grace_ms:
                continue
            memory.update(firing=True, since=silent_since)
            events.append(
                self._alert(
                    rule,
                    key=key,
                    host=state.host,
                    metric=str(memory["metric"]),
                    series_labels={},
                    transition=AlertState.FIRING,
                    value=float(rule.for_windows),
                    threshold=float(rule.for_windows),
                    starts_at=silent_since,
                    at=silent_since,
                )
            )
        return events

    def next_due_ms(self, state: FamilyState) -> int | None:
        """The wall time at which :meth:`check_nodata` may next fire something."""
        due = [
            self._silent_since(rule, memory) + self.grace_ms
            for memory in state.alerts.values()
            if (rule := self._by_name.get(memory.get("rule", ""))) is not None
            and memory.get("nodata")
            and not memory["firing"]
        ]
        return min(due) if due else None

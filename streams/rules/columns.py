"""Which states' closed windows the alert rules must see, found in columns.

Evaluating the rules builds a record per selected window and runs every rule
on it; that was a tenth of the stream worker's time, though nearly every
state remembers nothing for the rules and closes no window beyond a
threshold. For such a state :meth:`RuleEngine.evaluate
<streams.rules.engine.RuleEngine.evaluate>` changes nothing and raises
nothing: a threshold rule that finds no breach and no streak forgets the
series again. Those states are found here, from the closed windows'
columns, and left out before any record is built.

A state must be seen when it remembers anything (a streak, a firing alert,
a host's last window for a nodata rule), when one of its windows breaches a
threshold rule's threshold, or when a nodata rule selects one of its windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hoststream.schemas.records import MetricKind
from hoststream.streams.aggregator import ClosedWindows
from hoststream.streams.rules.model import COMPARISONS, Rule
from hoststream.streams.state import Float64Array, SeriesKey

__all__ = ["states_to_judge"]

#: Columns of :attr:`ClosedWindows.stats`, by a rule's name of the statistic.
_STATS_COLUMN = {
    name: column
    for column, name in enumerate(("sum", "min", "max", "mean", "last", "p50", "p90", "p95", "p99"))
}


def _selects(rule: Rule) -> Callable[[SeriesKey, MetricKind], bool]:
    """``rule.selector.matches`` on a series, without its window (see Selector.matches)."""
    metric = rule.selector.metric
    wanted = tuple(rule.selector.labels.items())

    def judge(key: SeriesKey, _kind: MetricKind) -> bool:
        if key[0] != metric:
            return False
        labels = dict(key[1])
        return all(labels.get(name, "") == value for name, value in wanted)

    return judge


def _values(closed: ClosedWindows, rule: Rule) -> Float64Array:
    """Per window, the statistic ``rule`` compares (NaN where the window has none)."""
    name = str(rule.aggregate)
    if name == "count":
        return closed.count.astype(np.float64)
    if name == "rate":
        return closed.rate
    return closed.stats[:, _STATS_COLUMN[name]]


def states_to_judge(closed: ClosedWindows, rules: Sequence[Rule]) -> set[int]:
    """The state numbers of ``closed`` whose windows the rules must be run on."""
    needed = {number for number, state in enumerate(closed.states) if state.alerts}
    for rule in rules:
        selector = rule.selector
        # The cache name holds all the judge depends on.
        name = f"rule selects {selector.metric} {sorted(selector.labels.items())}"
        rows = closed.row_flags(name, _selects(rule)) & (closed.size_ms == selector.window_ms)
        if not rows.any():
            continue
        owners = closed.state[rows]
        if not rule.nodata:
            assert rule.comparison is not None  # a threshold rule
            assert rule.threshold is not None
            values = _values(closed, rule)[rows]
            with np.errstate(invalid="ignore"):
                breached = np.isfinite(values) & COMPARISONS[rule.comparison](
                    values, rule.threshold
                )
            owners = owners[breached]
        needed.update(np.unique(owners).tolist())
    return needed

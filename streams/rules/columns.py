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

import math
from collections.abc import Sequence

import numpy as np

from hoststream.streams.aggregator import STATS_COLUMNS, ClosedWindows
from hoststream.streams.rules.model import COMPARISONS, Rule
from hoststream.streams.state import SeriesKey

__all__ = ["RuleColumns"]

#: Columns of :attr:`ClosedWindows.stats`, by a rule's name of the statistic.
_STATS_COLUMN = {name: column for column, name in enumerate(STATS_COLUMNS)}
#: Distinct series remembered with the rules that select them; series of one
#: name and labels are shared by every host, so there are few.
_MAX_SERIES = 100_000


class RuleColumns:
    """Finds the states of closed windows that the rules must be run on."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = list(rules)
        self._windows = [rule.selector.window_ms for rule in self._rules]
        # As the processor asks ClosedWindows.by_state for: both read one
        # cached flag array per state.
        self._wanted = frozenset(
            (rule.selector.metric, window)
            for rule, window in zip(self._rules, self._windows, strict=True)
        )
        self._selecting: dict[SeriesKey, tuple[int, ...]] = {}

    def _rules_selecting(self, key: SeriesKey) -> tuple[int, ...]:
        """The rules whose selector takes ``key``'s metric and labels (see Selector.matches)."""
        found = self._selecting.get(key)
        if found is None:
            if len(self._selecting) >= _MAX_SERIES:
                self._selecting.clear()
            labels = dict(key[1])
            found = self._selecting[key] = tuple(
                i for i, rule in enumerate(self._rules) if rule.selector.selects(key[0], labels)
            )
        return found

    def states_to_judge(self, closed: ClosedWindows) -> set[int]:
        """The state numbers of ``closed`` whose windows the rules must be run on."""
        needed = {number for number, state in enumerate(closed.states) if state.alerts}
        rows = np.flatnonzero(closed.rows_of(self._wanted)) if self._wanted else np.zeros(0, int)
        owners = closed.state[rows].tolist()
        series = closed.series[rows].tolist()
        sizes = closed.size_ms[rows].tolist()
        states = closed.states
        for row, owner, index, size in zip(rows.tolist(), owners, series, sizes, strict=True):
            if owner in needed:
                continue
            for i in self._rules_selecting(states[owner].series[index]):
                if self._windows[i] == size and self._matters(self._rules[i], closed, row):
                    needed.add(owner)
                    break
        return needed

    @staticmethod
    def _matters(rule: Rule, closed: ClosedWindows, row: int) -> bool:
        """A nodata rule sees every window it selects; a threshold rule, one beyond it."""
        if rule.nodata:
            return True
        assert rule.comparison is not None  # a threshold rule
        assert rule.threshold is not None
        name = str(rule.aggregate)
        if name == "count":
            value = float(closed.count[row])
        elif name == "rate":
            value = float(closed.rate[row])
        else:
            value = float(closed.stats[row, _STATS_COLUMN[name]])
        return math.isfinite(value) and COMPARISONS[rule.comparison](value, rule.threshold)

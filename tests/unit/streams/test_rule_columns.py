"""The states the rules are not run on are exactly those on which running them changes nothing."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from hoststream.schemas.records import MetricKind
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.rules import RuleEngine, load_rules, parse_rules
from hoststream.streams.rules.columns import RuleColumns
from hoststream.streams.state import FamilyState, series_key

T0 = 1_798_761_600_000
MIN = 60_000

# The built-in rules and a few of every other kind of comparison and statistic.
EXTRA = parse_rules(
    """\
rules:
  - {name: OneSample, selector: {metric: node_procs_blocked}, aggregate: count, comparison: "<",
     threshold: 2}
  - {name: BlockedTwelve, selector: {metric: node_procs_blocked}, aggregate: p99,
     comparison: "==", threshold: 12.0, for: 2}
  - {name: DiskRateLow, selector: {metric: node_disk_io_time_seconds_total,
     labels: {device: sda}}, aggregate: rate, comparison: "<=", threshold: 0.05, for: 2}
""",
    "extra.yaml",
)
RULES = [*load_rules(None).rules, *EXTRA.rules]


def _series(family: str) -> list[tuple[tuple[str, tuple[tuple[str, str], ...]], MetricKind]]:
    if family == "cpu":
        return [
            (series_key("node_cpu_seconds_total", {"cpu": str(c), "mode": m}), MetricKind.COUNTER)
            for c in range(2)
            for m in ("idle", "user")
        ]
    if family == "disk":
        return [
            (series_key("node_disk_io_time_seconds_total", {"device": d}), MetricKind.COUNTER)
            for d in ("sda", "sdb")
        ]
    return [
        (series_key("node_load1", {}), MetricKind.GAUGE),
        (series_key("node_procs_blocked", {}), MetricKind.GAUGE),
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_running_the_rules_on_a_state_left_out_would_change_nothing(data: st.DataObject) -> None:
    engine = RuleEngine(RULES, grace_ms=0)
    aggregator = WindowAggregator(["1m"], grace_ms=0, metrics=StreamMetrics(CollectorRegistry()))
    families = data.draw(
        st.lists(st.sampled_from(["cpu", "disk", "system"]), min_size=1, max_size=4)
    )
    states = [FamilyState(f"h{i}", family) for i, family in enumerate(families)]
    totals = [np.zeros(len(_series(f))) for f in families]
    left_out = 0
    for minute in range(data.draw(st.integers(2, 8))):
        changes = []
        for state, family, total in zip(states, families, totals, strict=True):
            before = state.horizon
            series = state.series_indexes(_series(family), None)
            # Per step, a counter rises by an amount around the thresholds' (busy, idle,
            # busy disk), a gauge takes a value on either side of them, or the state is silent.
            for tick in range(data.draw(st.integers(0, 6))):
                steps = data.draw(
                    st.lists(
                        st.sampled_from([0.0, 0.5, 1.0, 9.0, 10.0, 12.0]),
                        min_size=len(total),
                        max_size=len(total),
                    )
                )
                np.add(total, steps, out=total)
                values = total.copy() if family != "system" else np.asarray(steps)
                ts = T0 + minute * MIN + tick * 10_000
                aggregator.accept(state, ts, 10_000, series, values)
            aggregator._advance(state, T0 + (minute + 1) * MIN)
            changes.append((state, before))
        closed = aggregator.close(changes)
        judged = RuleColumns(RULES).states_to_judge(closed)
        for number, aggregates in closed.by_state().items():
            state = closed.states[number]
            if number in judged:
                engine.evaluate(state, aggregates)
                continue
            left_out += 1
            remembered = copy.deepcopy(state.alerts)
            assert engine.evaluate(state, aggregates) == []
            assert state.alerts == remembered
    event(f"states left out: {'some' if left_out else 'none'}")


def test_quiet_states_are_left_out_and_a_breach_or_a_memory_is_not() -> None:
    aggregator = WindowAggregator(["1m"], grace_ms=0, metrics=StreamMetrics(CollectorRegistry()))
    quiet, busy, remembering = (FamilyState(h, "disk") for h in ("quiet", "busy", "remembering"))
    remembering.alerts["HostDiskBusy/remembering/0"] = {"rule": "HostDiskBusy", "n": 1}
    changes = []
    for state, per_step in ((quiet, 1.0), (busy, 9.5), (remembering, 1.0)):
        before = state.horizon
        series = state.series_indexes(_series("disk"), None)
        for tick in range(6):
            values = np.full(2, per_step * tick)
            aggregator.accept(state, T0 + tick * 10_000, 10_000, series, values)
        aggregator._advance(state, T0 + MIN)
        changes.append((state, before))
    closed = aggregator.close(changes)
    judged = {closed.states[n].host for n in RuleColumns(RULES).states_to_judge(closed)}
    assert judged == {"busy", "remembering"}  # busy: 0.95 s of I/O a second, over 0.9

"""Alert rules: the file format with line-exact errors, and the engine's transitions."""

from __future__ import annotations

import textwrap

import pytest

from hoststream.errors import RuleFileError
from hoststream.schemas.records import AlertState, MetricKind, WindowAggregate
from hoststream.streams.rules import RuleEngine, dedup_key, load_rules, parse_rules
from hoststream.streams.state import FamilyState

T0 = 1_798_761_600_000
MIN = 60_000

RULES = """\
rules:
  - name: HighCpu
    selector:
      metric: hoststream_cpu_busy_ratio
      labels: {cpu: ""}
      window: 1m
    aggregate: mean
    comparison: ">"
    threshold: 0.9
    clear_threshold: 0.8
    for: 3
    severity: critical
    labels: {team: infra}
    annotations:
      summary: "{host} busy {value:.0%} (over {threshold})"
      other: "{cpu} {nonexistent}"
  - name: Silent
    nodata: true
    selector: {metric: node_load1}
    for: 2
    severity: warning
"""


def window(value: float, minute: int, host: str = "h1", metric: str = "hoststream_cpu_busy_ratio",
           **labels: str) -> WindowAggregate:  # fmt: skip
    start = T0 + minute * MIN
    return WindowAggregate(
        host=host, metric=metric, kind=MetricKind.GAUGE, window_size_ms=MIN, window_start=start,
        window_end=start + MIN, count=1, sum=value, min=value, max=value, mean=value, last=value,
        p50=value, p90=value, p95=value, p99=value, quantile_relative_error=0.01, labels=labels,
    )  # fmt: skip


def run(engine: RuleEngine, state: FamilyState, values: list[float], first_minute: int = 0):
    out = []
    for i, value in enumerate(values):
        out += engine.evaluate(state, [window(value, first_minute + i)])
    return out


@pytest.fixture
def engine() -> RuleEngine:
    return RuleEngine(parse_rules(RULES), grace_ms=10_000)


def test_fires_after_for_windows_and_resolves_below_clear_threshold(engine) -> None:
    state = FamilyState("h1", "cpu")
    # 0.95 twice, a dip breaks the streak, then three in a row: fires at minute 6.
    events = run(engine, state, [0.95, 0.95, 0.5, 0.95, 0.92, 0.91, 0.85, 0.81, 0.79, 0.95])
    assert [(e.state, e.window_end) for e in events] == [
        (AlertState.FIRING, T0 + 6 * MIN),
        (AlertState.RESOLVED, T0 + 9 * MIN),  # 0.85 and 0.81 stay above the clear threshold
    ]
    firing, resolved = events
    assert firing.dedup_key == resolved.dedup_key == dedup_key("HighCpu", "h1", firing.metric, {})
    assert firing.starts_at == resolved.starts_at == T0 + 6 * MIN
    assert firing.ends_at is None
    assert resolved.ends_at == T0 + 9 * MIN
    assert (firing.value, firing.threshold, resolved.value) == (0.91, 0.9, 0.79)
    assert firing.severity == "critical"
    assert firing.labels == {"team": "infra", "alertname": "HighCpu", "instance": "h1",
                             "severity": "critical"}  # fmt: skip
    assert firing.annotations["summary"] == "h1 busy 91% (over 0.9)"
    assert firing.annotations["other"] == "{cpu} {nonexistent}"  # unknown placeholders kept
    # The last 0.95 starts a new streak; a calm window would leave nothing to remember.
    assert [m["n"] for m in state.alerts.values()] == [1]
    run(engine, state, [0.5], first_minute=10)
    assert state.alerts == {}


def test_label_selector_empty_value_means_absent(engine) -> None:
    state = FamilyState("h1", "cpu")
    for minute in range(4):
        assert engine.evaluate(state, [window(1.0, minute, cpu="0")]) == []


def test_missing_window_breaks_the_streak(engine) -> None:
    state = FamilyState("h1", "cpu")
    assert run(engine, state, [0.95, 0.95]) == []
    assert run(engine, state, [0.95], first_minute=3) == []  # minute 2 missing
    assert len(run(engine, state, [0.95, 0.95], first_minute=4)) == 1


def test_a_window_judged_twice_changes_nothing(engine) -> None:
    state = FamilyState("h1", "cpu")
    run(engine, state, [0.95, 0.95])
    assert run(engine, state, [0.95], first_minute=1) == []
    assert len(run(engine, state, [0.95], first_minute=2)) == 1


def test_state_survives_serialization(engine) -> None:
    state = FamilyState("h1", "cpu")
    run(engine, state, [0.95, 0.95])
    state = FamilyState.from_bytes(state.to_bytes())
    assert [e.state for e in run(engine, state, [0.95], first_minute=2)] == [AlertState.FIRING]


def test_nodata_fires_after_silence_and_resolves_on_data(engine) -> None:
    state = FamilyState("h1", "system")
    assert engine.evaluate(state, [window(1.0, 0, metric="node_load1")]) == []
    last_end = T0 + MIN
    due = engine.next_due_ms(state)
    assert due == last_end + 2 * MIN + 10_000
    assert engine.check_nodata(state, due - 1) == []
    (fired,) = engine.check_nodata(state, due)
    assert (fired.state, fired.starts_at, fired.rule) == (
        AlertState.FIRING,
        last_end + 2 * MIN,
        "Silent",
    )
    assert engine.check_nodata(state, due + MIN) == []  # fires once
    (resolved,) = engine.evaluate(state, [window(1.0, 9, metric="node_load1")])
    assert resolved.state is AlertState.RESOLVED
    assert resolved.dedup_key == fired.dedup_key
    assert resolved.ends_at == T0 + 10 * MIN


def test_default_rules_load() -> None:
    names = [rule.name for rule in load_rules().rules]
    assert "HostHighCpuBusy" in names
    assert "HostSilent" in names


def bad(text: str) -> RuleFileError:
    with pytest.raises(RuleFileError) as info:
        parse_rules(textwrap.dedent(text), "rules.yaml")
    return info.value


def test_refused_wrong_type_names_its_line() -> None:
    error = bad("""\
        rules:
          - name: A
            selector: {metric: m}
            aggregate: mean
            comparison: ">"
            threshold: high
        """)
    assert error.line == 6
    assert "threshold" in error.reason
    assert str(error).startswith("--rules: rules.yaml:6: ")


def test_refused_unknown_key_and_bad_comparison() -> None:
    error = bad("""\
        rules:
          - name: A
            selector: {metric: m}
            aggregate: mean
            comparison: "=>"
            threshold: 1
        """)
    assert (error.line, "comparison" in error.reason) == (5, True)
    error = bad("""\
        rules:
          - name: A
            selector: {metric: m}
            nodata: true
            treshold: 1
        """)
    assert error.line == 5
    assert "treshold" in error.reason


def test_refused_inconsistent_rules() -> None:
    assert (
        "clear_threshold"
        in bad("""\
        rules:
          - name: A
            selector: {metric: m}
            aggregate: max
            comparison: ">"
            threshold: 1
            clear_threshold: 2
        """).reason
    )
    assert (
        "needs aggregate"
        in bad("""\
        rules:
          - name: A
            selector: {metric: m}
            threshold: 1
        """).reason
    )


def test_refused_duplicates_and_broken_yaml() -> None:
    error = bad("""\
        rules:
          - {name: A, nodata: true, selector: {metric: m}}
          - {name: A, nodata: true, selector: {metric: n}}
        """)
    assert (error.line, "defined twice (first at line 2)" in error.reason) == (3, True)
    error = bad("""\
        rules:
          - name: A
            name: B
        """)
    assert (error.line, "duplicate key" in error.reason) == (3, True)
    error = bad("rules:\n  - name: [unclosed\n")
    assert "not valid YAML" in error.reason
    assert error.line is not None


def test_refused_bad_window_and_name() -> None:
    assert (
        bad("rules:\n  - {name: A, nodata: true, selector: {metric: m, window: soon}}\n").line == 2
    )
    assert (
        "name"
        in bad("rules:\n  - {name: 'has space', nodata: true, selector: {metric: m}}\n").reason
    )


def test_missing_file() -> None:
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rules("/nonexistent/rules.yaml")


def test_worker_refuses_an_invalid_rule_file_with_exit_status_2(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    rules = tmp_path / "bad.yaml"
    rules.write_text(
        "rules:\n  - name: A\n    selector: {metric: m}\n    for: -1\n    nodata: true\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "hoststream", "stream", "--rules", str(rules)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
        env={"PATH": "/usr/bin:/bin", "HOSTSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
    )
    assert result.returncode == 2, result.stderr
    expected = f"{rules}:4: rule 'A': for: Input should be greater than or equal to 1"
    assert expected in result.stderr


def test_memory_of_a_removed_rule_is_dropped(engine) -> None:
    state = FamilyState("h1", "cpu")
    run(engine, state, [0.95])
    assert len(state.alerts) == 1
    other = RuleEngine(parse_rules("rules: []"), grace_ms=0)
    other.evaluate(state, [window(0.95, 1)])
    assert state.alerts == {}


def test_alert_events_carry_the_engines_region() -> None:
    regional = RuleEngine(parse_rules(RULES), grace_ms=10_000, region="region-b")
    state = FamilyState("h1", "system")
    fired = run(regional, state, [0.95, 0.95, 0.95, 0.1, 0.1, 0.1])
    assert fired
    assert {e.region for e in fired} == {"region-b"}
    # nodata alerts have no aggregate to take it from: they carry it too.
    assert regional.evaluate(state, [window(1.0, 0, metric="node_load1")]) == []
    (silent,) = regional.check_nodata(state, regional.next_due_ms(state) or 0)
    assert silent.region == "region-b"

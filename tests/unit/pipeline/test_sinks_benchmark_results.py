"""The sinks benchmark's results file: a part not run keeps the figures it had.

``BENCH_SINKS=vm`` (or ``sql``) runs one part of the suite; the other part's
figures and ratios come from the results file, with a note that they were
carried over. Unit tests on a results file of the test's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import sinks

EARLIER = {
    "date": "2026-11-30T12:00:00+00:00",
    "code": {"commit": "0123abc", "work_tree_differs": False},
    "figures": {
        "victoriametrics": {"sink_samples_per_s": 100.0},
        "sql": {"bulk_rows_per_s": 50.0},
    },
    "ratios": {
        "vm_sink_vs_bare_import": 0.5,
        "vm_sink_without_write_ahead_vs_bare_import": 0.4,
        "sql_bulk_vs_row_at_a_time": 3.0,
    },
}


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sinks, "RESULTS", tmp_path)
    return tmp_path / "sinks.json"


def test_the_part_not_run_keeps_its_figures_and_ratios_marked_as_carried_over(
    results: Path,
) -> None:
    results.write_text(json.dumps(EARLIER))
    figures = {"victoriametrics": {"sink_samples_per_s": 200.0}}
    ratios = {"vm_sink_vs_bare_import": 0.7}
    notes: list[str] = []
    sinks._carry_over(["vm"], figures, ratios, notes)
    assert figures == {
        "victoriametrics": {"sink_samples_per_s": 200.0},
        "sql": {"bulk_rows_per_s": 50.0},
    }
    # Only the SQL ratios come back: the VictoriaMetrics ones are this run's.
    assert ratios == {"vm_sink_vs_bare_import": 0.7, "sql_bulk_vs_row_at_a_time": 3.0}
    assert notes == [
        "sql figures carried over from the run of 2026-11-30T12:00:00+00:00 (commit 0123abc),"
        " not measured in this run"
    ]


def test_the_sql_part_alone_carries_the_victoriametrics_figures_over(results: Path) -> None:
    results.write_text(json.dumps(EARLIER))
    figures = {"sql": {"bulk_rows_per_s": 60.0}}
    ratios = {"sql_bulk_vs_row_at_a_time": 4.0}
    notes: list[str] = []
    sinks._carry_over(["sql"], figures, ratios, notes)
    assert figures == {
        "sql": {"bulk_rows_per_s": 60.0},
        "victoriametrics": {"sink_samples_per_s": 100.0},
    }
    assert ratios == {
        "sql_bulk_vs_row_at_a_time": 4.0,
        "vm_sink_vs_bare_import": 0.5,
        "vm_sink_without_write_ahead_vs_bare_import": 0.4,
    }
    assert [note.split(" figures")[0] for note in notes] == ["victoriametrics"]


def test_nothing_is_carried_over_when_every_part_ran_or_there_is_nothing_earlier(
    results: Path,
) -> None:
    figures = {"victoriametrics": {"sink_samples_per_s": 200.0}}
    notes: list[str] = []
    sinks._carry_over(["vm"], figures, {}, notes)  # no results file yet
    assert (figures, notes) == ({"victoriametrics": {"sink_samples_per_s": 200.0}}, [])
    results.write_text(json.dumps(EARLIER))
    both = {"victoriametrics": {"sink_samples_per_s": 1.0}, "sql": {"bulk_rows_per_s": 2.0}}
    sinks._carry_over(["vm", "sql"], both, {}, notes)
    assert (both, notes) == (
        {"victoriametrics": {"sink_samples_per_s": 1.0}, "sql": {"bulk_rows_per_s": 2.0}},
        [],
    )
    results.write_text(json.dumps({**EARLIER, "figures": {"victoriametrics": {}}}))
    sinks._carry_over(["vm"], figures, {}, notes)  # the file holds no SQL figures
    assert (figures, notes) == ({"victoriametrics": {"sink_samples_per_s": 200.0}}, [])

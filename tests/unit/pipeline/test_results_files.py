"""Every committed benchmark results file says which code it measured."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_a_results_file_records_its_commit_and_whether_the_tree_differed(path: Path) -> None:
    code = json.loads(path.read_text()).get("code")
    assert isinstance(code, dict), f"{path.name} does not say which code it measured"
    assert re.fullmatch(r"[0-9a-f]{40}", str(code.get("commit"))), code
    assert isinstance(code.get("work_tree_differs"), bool), code


def test_there_are_results_files() -> None:
    assert len(list(RESULTS.glob("*.json"))) >= 5

"""The command line, run in-process on a stack folder with nothing running."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hoststream.cli import app


def test_stack_status_lists_every_service_down_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTSTREAM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOSTSTREAM_STACK_PORT_OFFSET", "17000")
    result = CliRunner().invoke(app, ["stack", "status"])
    assert result.exit_code == 1, result.output
    for service in ("kafka", "postgres", "victoriametrics"):
        assert service in result.output
    assert "down" in result.output

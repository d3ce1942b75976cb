"""The command line, run in-process on a stack folder with nothing running."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hoststream.cli import app
from hoststream.producers.agent import ProducerReport


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


@pytest.mark.parametrize(
    ("lost", "exit_code"),
    [({}, 0), ({"failed": 1}, 1), ({"dropped": 2}, 1), ({"unflushed": 3}, 1)],
)
def test_produce_exits_1_when_an_event_never_reached_kafka(
    lost: dict[str, int], exit_code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run itself is replaced (in-process double): what is tested is the
    # exit status the command derives from the run's report.
    report = ProducerReport(events=10, acknowledged=10 - sum(lost.values()), **lost)
    monkeypatch.setattr("hoststream.runtime.run_component", lambda *_, **__: report)
    result = CliRunner().invoke(app, ["produce", "--simulate-hosts", "1", "--duration", "1"])
    assert result.exit_code == exit_code, result.output
    assert f"failed {report.failed}, dropped {report.dropped}," in result.output

"""`hoststream run`'s components: their ports follow the stack's offset, and a
component that dies is reported with its last error line."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoststream.config import Settings
from hoststream.ports import COMPONENT_METRICS_PORTS, scrape_targets
from hoststream.run_report import Health, ServiceHealth
from hoststream.runner import FIRST_SAMPLE_PATH, Component, _component_health, pipeline_components

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_every_port_moves_with_the_stack_offset() -> None:
    components = pipeline_components(Settings(stack_port_offset=100), simulate_hosts=2)
    ports = {c.name: c.metrics_port for c in components}
    assert ports == {name: port + 100 for name, port in COMPONENT_METRICS_PORTS.items()} | {
        "api": 8100
    }
    assert ports == scrape_targets(100)
    for component in components:
        setting = "HOSTSTREAM_API_PORT" if component.name == "api" else "HOSTSTREAM_METRICS_PORT"
        assert component.env == {setting: str(component.metrics_port)}


def test_the_api_port_follows_the_offset_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run beside another stack sets an offset of its own; this test is about the default.
    monkeypatch.delenv("HOSTSTREAM_STACK_PORT_OFFSET", raising=False)
    monkeypatch.delenv("HOSTSTREAM_API_PORT", raising=False)
    assert Settings().api_port == 8000
    assert Settings(stack_port_offset=7).api_port == 8007
    assert Settings(stack_port_offset=7, api_port=9000).api_port == 9000


def test_a_dead_component_reports_its_last_error_line_of_this_run(
    tmp_path: Path, taken_port: int
) -> None:
    (tmp_path / "sink-sql.log").write_text("error: a line of an earlier run\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTSTREAM_")}
    env |= {"PYTHONPATH": str(REPO), "HOSTSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    component = Component(
        "sink-sql",
        ["sink", "sql"],
        taken_port,
        {"HOSTSTREAM_METRICS_PORT": str(taken_port)},
    )
    component.start(env, tmp_path)
    assert component.process is not None
    assert component.process.wait(60) == 1
    assert component.exited
    assert component.state == "exited 1"
    assert component.last_error_line() == (
        f"error: cannot serve /metrics on 127.0.0.1:{taken_port} (HOSTSTREAM_METRICS_PORT): "
        "Address already in use"
    )


def test_components_off_the_first_samples_way_start_after_it() -> None:
    components = pipeline_components(Settings(), simulate_hosts=2)
    first = [c.name for c in components if c.name in FIRST_SAMPLE_PATH]
    assert first == ["producer", "simulator", "sink-victoriametrics"]
    # One waiting for them shows as starting in the status line, not as down.
    waiting = next(c for c in components if c.name == "stream")
    assert _component_health(waiting) == ServiceHealth("stream", Health.STARTING)

"""The stack's VictoriaLogs: on loopback, its port shifted with the stack, logs URL exported."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack import Stack
from hoststream.stack.victorialogs import VictoriaLogs


def victorialogs_of(stack: Stack) -> VictoriaLogs:
    [service] = stack.services()
    assert isinstance(service, VictoriaLogs)
    return service


def test_port_follows_the_stack_offset_and_the_logs_endpoint_is_exported(tmp_path: Path) -> None:
    stack = Stack(tmp_path, services=["victorialogs"], port_offset=1000)
    logs = victorialogs_of(stack)
    assert logs.ports == [10428]
    assert stack.environment() == {
        "HOSTSTREAM_OTLP_LOGS_ENDPOINT": "http://127.0.0.1:10428/insert/opentelemetry/v1/logs"
    }


def test_it_listens_on_loopback_and_keeps_its_data_in_the_stack(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "victorialogs").mkdir(parents=True)
    (lib / "victorialogs" / "victoria-logs").write_text("")
    logs = victorialogs_of(Stack(tmp_path, lib=lib, services=["victorialogs"]))
    command = logs.command()
    assert "-httpListenAddr=127.0.0.1:9428" in command
    assert f"-storageDataPath={tmp_path / 'data' / 'victorialogs'}" in command


def test_a_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    logs = victorialogs_of(Stack(tmp_path, lib=tmp_path / "empty", services=["victorialogs"]))
    assert logs.build is not None
    assert not logs.build.built()
    with pytest.raises(PrerequisiteMissingError, match=r"build-victorialogs\.sh"):
        logs.command()

"""The `hoststream` command line against the running stack, and its exit statuses."""

from __future__ import annotations

import os
import subprocess
import sys

from hoststream.stack import Stack
from tests.support.paths import STATE_DIR
from tests.support.services import PORT_OFFSET


def hoststream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hoststream", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
        check=False,
    )


def test_stack_status_lists_every_service(services) -> None:
    result = hoststream("stack", "status")
    assert result.returncode == 0, result.stderr
    for name in ("postgres", "victoriametrics", "kafka", "schema-registry"):
        assert name in result.stdout


def test_stack_up_is_idempotent(services) -> None:
    before = {s.name: s.pid for s in Stack(STATE_DIR, port_offset=PORT_OFFSET).status()}
    result = hoststream("stack", "up")
    assert result.returncode == 0, result.stderr
    after = {s.name: s.pid for s in Stack(STATE_DIR, port_offset=PORT_OFFSET).status()}
    assert before == after
    env_lines = (STATE_DIR / "stack.env").read_text().splitlines()
    assert f"HOSTSTREAM_KAFKA_BOOTSTRAP=127.0.0.1:{9092 + PORT_OFFSET}" in env_lines


def test_bad_configuration_exits_2_naming_the_setting() -> None:
    result = hoststream("stack", "status", env={"HOSTSTREAM_TOPIC_PARTITIONS": "zero"})
    assert result.returncode == 2
    assert "HOSTSTREAM_TOPIC_PARTITIONS" in result.stderr


def test_bad_usage_exits_2() -> None:
    assert hoststream("stack", "up", "--brokers", "2").returncode == 2
    assert hoststream("no-such-command").returncode == 2

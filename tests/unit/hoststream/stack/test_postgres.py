"""The local PostgreSQL's start-up options. Unit tests: the command is read, nothing is started."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from hoststream.stack.base import StackPaths
from hoststream.stack.postgres import PostgresServer


def server_options(server: PostgresServer) -> dict[str, str]:
    """The ``-c name=value`` settings ``pg_ctl`` hands the server (its ``-o`` argument)."""
    command = server.command()
    words = shlex.split(command[command.index("-o") + 1])
    return dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "-c")


def test_synchronous_commit_is_left_on_so_a_committed_batch_survives_a_server_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hoststream.stack.postgres.find_pg_bin", lambda: Path("/pg/bin"))
    options = server_options(PostgresServer(StackPaths(tmp_path, tmp_path / "lib"), 5432))
    assert options["listen_addresses"] == "127.0.0.1"  # the options were read
    # Unset means PostgreSQL's default, on; any other value may lose a commit the
    # SQL sink has already acknowledged to Kafka.
    assert options.get("synchronous_commit", "on") == "on"
    assert options.get("fsync", "on") == "on"

"""The stack's process bookkeeping, on a stand-in service (a `sleep` process).

These are unit tests: the stand-in replaces a real server so pid handling,
port checks and start failures can be checked in isolation.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from hoststream.errors import ServiceStartError, StackError
from hoststream.stack.base import LocalService, StackPaths
from hoststream.stack.java import java_major_version
from hoststream.stack.kafka import broker_layout, new_cluster_id


class SleepService(LocalService):
    """Stand-in service: a process that sleeps; healthy once it runs."""

    start_timeout_s = 5.0

    def __init__(self, paths: StackPaths, argv: list[str] | None = None, port: int = 0) -> None:
        super().__init__("sleeper", paths)
        self.ready_file = paths.root / "sleeper.ready"
        self.argv = argv or [
            sys.executable,
            "-c",
            f"import pathlib, time; pathlib.Path({str(self.ready_file)!r}).touch(); time.sleep(60)",
        ]
        self.port = port

    @property
    def address(self) -> str:
        return "-"

    @property
    def ports(self) -> list[int]:
        return [self.port] if self.port else []

    def command(self) -> list[str]:
        return self.argv

    def healthy(self) -> bool:
        return self.ready_file.exists()


@pytest.fixture
def paths(tmp_path: Path) -> StackPaths:
    return StackPaths(tmp_path, tmp_path / "lib")


def test_start_is_idempotent_and_stop_kills_by_pid(paths: StackPaths) -> None:
    service = SleepService(paths)
    service.start()
    pid = service.running_pid()
    assert pid is not None
    service.start()
    assert service.running_pid() == pid
    assert service.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not service.stop()


def test_a_recycled_pid_is_not_ours(paths: StackPaths) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pidfile = paths.pidfile("sleeper")
        pidfile.parent.mkdir(parents=True)
        # Same pid, but recorded as started long before the process did.
        pidfile.write_text(json.dumps({"pid": stranger.pid, "started": 1000.0}))
        service = SleepService(paths)
        assert service.running_pid() is None
        assert not service.stop()
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_step_of_the_machines_clock_leaves_the_services_its_own(
    paths: StackPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    # psutil derives start times from the boot time, which follows the wall
    # clock: after a 36 s step every service looked gone, and starting the
    # stack again failed on their ports.
    service = SleepService(paths)
    service.start()
    try:
        pid = service.running_pid()
        assert pid is not None
        boot, created = psutil.boot_time(), psutil.Process(pid).create_time()
        monkeypatch.setattr(psutil, "boot_time", lambda: boot + 36.0)
        monkeypatch.setattr(psutil.Process, "create_time", lambda self: created + 36.0)
        assert service.running_pid() == pid
        # Still another process's pid, recorded after boot, is not ours.
        record = json.loads(paths.pidfile("sleeper").read_text())
        paths.pidfile("sleeper").write_text(json.dumps({**record, "since_boot": 5.0}))
        assert service.running_pid() is None
    finally:
        monkeypatch.undo()
        psutil.Process(pid).kill()


def test_taken_port_fails_with_a_clear_message(paths: StackPaths) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(StackError, match=f"port {port} .* already in use"):
            SleepService(paths, port=port).start()


def test_a_service_that_dies_reports_its_log(paths: StackPaths) -> None:
    service = SleepService(
        paths, [sys.executable, "-c", "print('bad config line 3'); raise SystemExit(3)"]
    )
    with pytest.raises(ServiceStartError, match="bad config line 3") as error:
        service.start()
    assert "status 3" in str(error.value)


def test_broker_layouts() -> None:
    assert broker_layout(1) == [(1, 9092, 9093)]
    assert broker_layout(3) == [(1, 19092, 19093), (2, 29092, 29093), (3, 39092, 39093)]


def test_cluster_id_format() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert "=" not in cluster_id


def test_java_version_from_release_file(tmp_path: Path) -> None:
    (tmp_path / "release").write_text('IMPLEMENTOR="x"\nJAVA_VERSION="21.0.4"\n')
    assert java_major_version(tmp_path) == 21
    (tmp_path / "release").write_text('JAVA_VERSION="1.8.0_392"\n')
    assert java_major_version(tmp_path) == 8

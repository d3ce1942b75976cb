"""The contract every local service follows, and the process bookkeeping they share."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import httpx
import psutil

from hoststream.errors import ServiceStartError, StackError

if TYPE_CHECKING:
    from hoststream.stack.builds import BackgroundBuild

__all__ = [
    "LocalService",
    "LoopbackHttpService",
    "ServiceStatus",
    "StackPaths",
    "port_is_free",
    "tail",
]


@dataclass(frozen=True)
class StackPaths:
    """Where a stack keeps its installed software, data, logs and pid files."""

    root: Path
    #: Installed jars; shared by every stack of one checkout.
    lib: Path

    def data(self, service: str) -> Path:
        return self.root / "data" / service

    def log(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def pidfile(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    def config(self, service: str) -> Path:
        return self.root / "conf" / service


@dataclass(frozen=True)
class ServiceStatus:
    """What ``stack status`` shows of one service."""

    name: str
    address: str
    pid: int | None
    healthy: bool
    detail: str = ""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


class LocalService(ABC):
    """One real server run as a local process that the stack starts and stops by pid.

    Subclasses say how to prepare the service's files, the command that runs it,
    the ports it binds and how to tell that it really answers.
    """

    #: Seconds ``up`` waits for :meth:`healthy` before it gives up.
    start_timeout_s: float = 90.0
    #: How the service's binary is built, for services built from source in
    #: the background; None for installed ones.
    build: BackgroundBuild | None = None

    def __init__(self, name: str, paths: StackPaths) -> None:
        self.name = name
        self.paths = paths

    # What a service must say about itself.
    @property
    @abstractmethod
    def address(self) -> str:
        """How clients reach the service, as shown by ``stack status``."""

    @property
    @abstractmethod
    def ports(self) -> list[int]:
        """Every loopback port the service binds."""

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the service in the foreground."""

    @abstractmethod
    def healthy(self) -> bool:
        """True when the service answers a real request."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Write configuration and initialise data; must be idempotent."""

    def outdated(self) -> bool:
        """True when it runs, but a better binary of it is installed now (see VictoriaMetrics)."""
        return False

    def environment(self) -> dict[str, str]:
        """Extra environment for the service's process."""
        return {}

    def working_dir(self) -> Path | None:
        return None

    # Process bookkeeping shared by all services.
    def running_pid(self) -> int | None:
        """The pid of the process this stack started, if it still runs."""
        pidfile = self.paths.pidfile(self.name)
        try:
            record = json.loads(pidfile.read_text())
            proc = psutil.Process(int(record["pid"]))
            # A recycled pid belongs to another process: compare start times,
            # as seconds after boot where recorded. psutil's start time is the
            # boot time (from the wall clock) plus the kernel's count since boot,
            # so a step of the machine's clock moves it: a stack then took its
            # own running services for gone, and refused to start over them.
            if "since_boot" in record:
                since_boot = proc.create_time() - psutil.boot_time()
                if abs(since_boot - float(record["since_boot"])) > 1.0:
                    return None
            elif abs(proc.create_time() - float(record["started"])) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return int(proc.pid)
        except (OSError, ValueError, KeyError, psutil.Error):
            return None

    def _record_pid(self, pid: int) -> None:
        pidfile = self.paths.pidfile(self.name)
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        started = psutil.Process(pid).create_time()
        since_boot = started - psutil.boot_time()
        pidfile.write_text(json.dumps({"pid": pid, "started": started, "since_boot": since_boot}))

    def check_ports(self) -> None:
        taken = [port for port in self.ports if not port_is_free(port)]
        if taken:
            raise StackError(
                f"{self.name}: port {taken[0]} on 127.0.0.1 is already in use by another "
                f"process; stop that process (see `ss -ltnp 'sport = :{taken[0]}'`) "
                "or run `hoststream stack down` if it is an earlier stack"
            )

    def start(self) -> None:
        """Start the process unless it already runs, then wait until it answers.

        A service built from source in the background waits for its build first.
        """
        if self.build is not None and self.running_pid() is None:
            self.build.wait(self.build.timeout_s)
        self.wait_healthy(self.launch())

    def launch(self) -> subprocess.Popen[bytes] | None:
        """Start the process unless it already runs; do not wait for it.

        Returns the new process, or None when one was already running.
        """
        if self.running_pid() is not None:
            return None
        self.check_ports()
        self.prepare()
        log = self.paths.log(self.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.working_dir(),
                env={**os.environ, **self.environment()},
                # Its own session: Ctrl-C in the terminal must not kill the stack
                # behind the pipeline's back; `stack down` stops it.
                start_new_session=True,
            )
        self._record_pid(proc.pid)
        return proc

    def wait_healthy(self, process: subprocess.Popen[bytes] | None = None) -> None:
        def ready() -> bool:
            if process is not None and process.poll() is not None:
                raise ServiceStartError(
                    f"{self.name} exited with status {process.returncode} while starting; "
                    f"last lines of {self.paths.log(self.name)}:\n{tail(self.paths.log(self.name))}"
                )
            return self.healthy()

        if not wait_until(ready, self.start_timeout_s):
            raise ServiceStartError(
                f"{self.name} did not answer within {self.start_timeout_s:.0f}s; "
                f"last lines of {self.paths.log(self.name)}:\n{tail(self.paths.log(self.name))}"
            )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the process this stack started; True if one was running."""
        pid = self.running_pid()
        if pid is None:
            self.paths.pidfile(self.name).unlink(missing_ok=True)
            return False
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except psutil.TimeoutExpired:
            proc.kill()
            # A killed process whose parent is not this one may stay a zombie
            # until that parent reaps it: it is gone all the same.
            with contextlib.suppress(psutil.TimeoutExpired):
                proc.wait(timeout=10)
        self.paths.pidfile(self.name).unlink(missing_ok=True)
        return True

    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        healthy = pid is not None and self.healthy()
        detail = ""
        if pid is None and self.build is not None and not self.build.built():
            detail = "building" if self.build.building() else "not built"
        return ServiceStatus(self.name, self.address, pid, healthy, detail)


class LoopbackHttpService(LocalService):
    """A service with one plain HTTP port on 127.0.0.1, healthy when ``health_path`` answers 200.

    Args:
        name: the service's name in the stack (its folders, pid file, status line).
        paths: the stack's folders.
        port: the one port it binds.
    """

    #: The path that answers 200 once the service serves requests.
    health_path: ClassVar[str] = "/health"

    def __init__(self, name: str, paths: StackPaths, port: int) -> None:
        super().__init__(name, paths)
        self.port = port

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.address}{self.health_path}", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

"""Service binaries built from source in the background (Jaeger, VictoriaLogs).

Building Jaeger from the Go module proxy takes minutes on a cold cache, too
long to keep the first `make run` waiting: the stack starts the build in the
background, starts everything else, and the service joins once its binary
exists. The build script holds an exclusive ``flock`` on its lock file while it
works, so `make install`, `stack up` and a test run can all ask for the same
build and only one runs; that lock is also how "building" is told apart from
"never built".
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

from hoststream.errors import PrerequisiteMissingError, ServiceStartError
from hoststream.stack.base import StackPaths, tail

__all__ = ["REPO_DEPLOY", "BackgroundBuild"]

#: Seconds the build's lock may stay free, with no binary, before the build counts as failed.
FAILED_AFTER_S = 5.0

#: The build scripts ship with the repository (``deploy/local``).
REPO_DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "local"


class BackgroundBuild:
    """One binary that a script under ``deploy/local`` builds, in the background.

    Args:
        name: the service's name; the build's log is ``logs/build-<name>.log``.
        script: the build script; it must ``flock`` :attr:`lock_file` while it
            works and do nothing when the binary is already there.
        binary: the file the script produces.
        paths: the stack's folders (the build folder is ``<state>/build/<name>``).
    """

    #: How long :meth:`LocalService.start` waits for the build (Jaeger from a
    #: cold Go cache: about 5 minutes on two cores).
    timeout_s: float = 20 * 60.0

    def __init__(self, name: str, script: Path, binary: Path, paths: StackPaths) -> None:
        self.name = name
        self.script = script
        self.binary = binary
        self.paths = paths

    @property
    def lock_file(self) -> Path:
        return self.paths.root / "build" / f"{self.name}.lock"

    @property
    def log(self) -> Path:
        return self.paths.root / "logs" / f"build-{self.name}.log"

    def built(self) -> bool:
        return self.binary.is_file() and os.access(self.binary, os.X_OK)

    def building(self) -> bool:
        """True while a build script (of any process) holds the lock."""
        try:
            with self.lock_file.open("a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(lock, fcntl.LOCK_UN)
                return False
        except OSError:
            return False

    def start(self) -> bool:
        """Start the build unless the binary exists or a build runs; True if one was started."""
        if self.built() or self.building():
            return False
        if not self.script.is_file():
            raise PrerequisiteMissingError(
                f"{self.name} is not built and its build script {self.script} is missing; "
                "run `make install` from a hoststream checkout"
            )
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            subprocess.Popen(
                # Below the pipeline's priority: it waits for nothing the build makes.
                ["nice", "-n", "5", "bash", str(self.script)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={
                    **os.environ,
                    "HOSTSTREAM_STATE_DIR": str(self.paths.root),
                    "HOSTSTREAM_LIB_DIR": str(self.paths.lib),
                },
                # Its own session: Ctrl-C on `hoststream run` must not kill a
                # build that the next run would then start again from scratch.
                start_new_session=True,
            )
        return True

    def wait(self, timeout_s: float) -> None:
        """Start the build if needed and wait until the binary exists.

        Raises:
            ServiceStartError: the build failed (its lock is free and there is
                no binary) or did not finish within ``timeout_s``.
        """
        self.start()
        deadline = time.monotonic() + timeout_s
        # A script just started may not hold its lock yet: only a lock that
        # stays free for a few seconds without a binary means the build failed.
        free_since: float | None = None
        while not self.built():
            now = time.monotonic()
            if self.building():
                free_since = None
            elif free_since is None:
                free_since = now
            elif now - free_since > FAILED_AFTER_S:
                raise ServiceStartError(
                    f"building {self.name} failed; last lines of {self.log}:\n{tail(self.log)}"
                )
            if now > deadline:
                raise ServiceStartError(
                    f"building {self.name} did not finish within {timeout_s:.0f}s; see {self.log}"
                )
            time.sleep(1.0)

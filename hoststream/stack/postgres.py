"""PostgreSQL 15 from the Debian package, standing in for CockroachDB.

Both speak the PostgreSQL wire protocol; hoststream's SQL stays inside what
CockroachDB accepts too. ``pg_ctl`` daemonises the server, so start and stop
go through it rather than through the shared process bookkeeping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg

from hoststream.errors import PrerequisiteMissingError, ServiceStartError
from hoststream.stack.base import LocalService, StackPaths, tail

__all__ = ["PostgresServer", "find_pg_bin"]

DATABASES = ("hoststream", "apicurio_registry")


def find_pg_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if not candidates:
        found = shutil.which("pg_ctl")
        if found:
            return Path(found).parent
        raise PrerequisiteMissingError(
            "PostgreSQL server is not installed; "
            "run `make install` (or `apt-get install postgresql`)"
        )
    return candidates[0].parent


class PostgresServer(LocalService):
    def __init__(self, paths: StackPaths, port: int) -> None:
        super().__init__("postgres", paths)
        self.port = port

    @property
    def address(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/hoststream"

    @property
    def ports(self) -> list[int]:
        return [self.port]

    @property
    def datadir(self) -> Path:
        return self.paths.data(self.name).resolve()

    def _as_owner(self, argv: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root; the Debian package made a postgres user.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def prepare(self) -> None:
        pg_bin = find_pg_bin()
        if (self.datadir / "PG_VERSION").exists():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
        log = self.paths.log(self.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            self._as_owner(
                [str(pg_bin / "initdb"), "-D", str(self.datadir), "-U", "postgres", "--auth=trust"]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceStartError(
                f"initdb failed in {self.datadir}: {result.stderr.strip()[-800:]} "
                "(the postgres user must be able to reach this folder)"
            )

    def command(self) -> list[str]:
        return [
            str(find_pg_bin() / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.paths.log(self.name).resolve()),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.datadir} "
            "-c synchronous_commit=off -c max_connections=200",
            "start",
        ]

    def running_pid(self) -> int | None:
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def start(self) -> None:
        if self.running_pid() is None:
            self.check_ports()
            self.prepare()
            log = self.paths.log(self.name).resolve()
            log.parent.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                log.touch()
                shutil.chown(log, "postgres", "postgres")
            result = subprocess.run(
                self._as_owner(self.command()), capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise ServiceStartError(
                    f"postgres did not start: {result.stderr.strip()}\n{tail(log)}"
                )
        self.wait_healthy()
        self._create_databases()

    def _create_databases(self) -> None:
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in DATABASES:
                if name not in existing:
                    # Identifiers cannot be parameters; the names are constants above.
                    conn.execute(f'CREATE DATABASE "{name}"')

    def _dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def jdbc_url(self, database: str) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{database}"

    def stop(self, timeout_s: float = 30.0) -> bool:
        if self.running_pid() is None:
            return False
        subprocess.run(
            self._as_owner(
                [str(find_pg_bin() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]
            ),
            capture_output=True,
            check=False,
            timeout=timeout_s + 10,
        )
        return True

    def healthy(self) -> bool:
        try:
            with psycopg.connect(self._dsn("postgres"), connect_timeout=2) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False

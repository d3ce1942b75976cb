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
from psycopg import sql

from hoststream.errors import PrerequisiteMissingError, ServiceStartError
from hoststream.stack.base import LocalService, StackPaths, tail
from hoststream.stack.security import REGISTRY_ROLE, SQL_ROLES, StackSecurity

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


_SECURE_HBA = """\
# The stack itself, as the superuser, through the socket in the data folder (mode 0700).
local all postgres trust
# Everyone else: TLS and a SCRAM password; a connection without TLS has no entry.
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128 scram-sha-256
"""


class PostgresServer(LocalService):
    """PostgreSQL; with ``security``, TLS only and a SCRAM role per component.

    Args:
        security: the secure stack's files; None: the plaintext stack (trust on loopback).
    """

    def __init__(self, paths: StackPaths, port: int, security: StackSecurity | None = None) -> None:
        super().__init__("postgres", paths)
        self.port = port
        self.security = security

    @property
    def address(self) -> str:
        if self.security is not None:
            return f"postgresql://127.0.0.1:{self.port}/hoststream?sslmode=verify-full"
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

    def _tls_options(self) -> str:
        if self.security is None:
            return ""
        conf = self.paths.config(self.name).resolve()
        conf.mkdir(parents=True, exist_ok=True)
        cert = self.security.certificate("postgres")
        # PostgreSQL reads its key only if the server's user owns it and nobody else can.
        for source, target in ((cert.cert_file, "server.pem"), (cert.key_file, "server-key.pem")):
            path = conf / target
            path.write_bytes(source.read_bytes())
            path.chmod(0o600)
        (conf / "pg_hba.conf").write_text(_SECURE_HBA)
        if os.geteuid() == 0:
            for path in (conf, *conf.iterdir()):
                shutil.chown(path, "postgres", "postgres")
        return (
            f" -c ssl=on -c ssl_cert_file={conf / 'server.pem'}"
            f" -c ssl_key_file={conf / 'server-key.pem'} -c hba_file={conf / 'pg_hba.conf'}"
            " -c password_encryption=scram-sha-256"
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
            # synchronous_commit stays on: the SQL sink commits its Kafka offsets
            # once PostgreSQL says a batch is committed, so that commit must
            # survive a crash of the server.
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.datadir} "
            "-c max_connections=200" + self._tls_options(),
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
        if self.security is not None:
            self._grant_roles(self.security)

    def _create_databases(self) -> None:
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in DATABASES:
                if name not in existing:
                    # Identifiers cannot be parameters; the names are constants above.
                    conn.execute(f'CREATE DATABASE "{name}"')

    def _grant_roles(self, security: StackSecurity) -> None:
        """The SQL sink's role owns hoststream's tables; the API's may only read them."""
        sink, api = SQL_ROLES["sink-sql"], SQL_ROLES["api"]
        roles = (sink, api, REGISTRY_ROLE)
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}
            for role in roles:
                verb = "ALTER" if role in existing else "CREATE"
                conn.execute(
                    sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                        sql.SQL(verb), sql.Identifier(role), sql.Literal(security.password(role))
                    )
                )
            conn.execute('REVOKE ALL ON DATABASE "hoststream" FROM PUBLIC')
            conn.execute('REVOKE ALL ON DATABASE "apicurio_registry" FROM PUBLIC')
            # TEMPORARY: each batch is COPY'd into a temporary staging table.
            conn.execute(f'GRANT CONNECT, CREATE, TEMPORARY ON DATABASE "hoststream" TO {sink}')
            conn.execute(f'GRANT CONNECT ON DATABASE "hoststream" TO {api}')
            conn.execute(f'ALTER DATABASE "apicurio_registry" OWNER TO {REGISTRY_ROLE}')
        with psycopg.connect(self._dsn("hoststream"), autocommit=True) as conn:
            conn.execute(f"ALTER SCHEMA public OWNER TO {sink}")
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            conn.execute(f"GRANT USAGE ON SCHEMA public TO {api}")
            conn.execute(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {sink} GRANT USAGE ON SCHEMAS TO {api}"
            )
            conn.execute(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {sink} GRANT SELECT ON TABLES TO {api}"
            )
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {api}")

    def _dsn(self, database: str) -> str:
        if self.security is not None:
            # The superuser only through the socket in the data folder: never over TCP.
            return f"postgresql://postgres@/{database}?host={self.datadir}&port={self.port}"
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def jdbc_url(self, database: str) -> str:
        if self.security is not None:
            return (
                f"jdbc:postgresql://127.0.0.1:{self.port}/{database}"
                f"?sslmode=verify-full&sslrootcert={self.security.ca_file.resolve()}"
            )
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

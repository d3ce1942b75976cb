"""CockroachDB/PostgreSQL: window aggregates and alert events, written idempotently.

Each batch is one transaction of multi-row ``INSERT ... ON CONFLICT ... DO
UPDATE`` statements (a form both databases accept), so writing a batch twice
leaves the same rows. CockroachDB asks clients to retry transactions that
lose a conflict (SQLSTATE 40001); the sink retries those itself, and
reports a lost or refused connection as "unavailable" so the consumer loop
pauses and retries with backoff. The schema is created and upgraded by the
versioned migrations in :mod:`sinks.migrations` on first connect.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import psycopg
from psycopg import sql

from hoststream.dead_letters import Rejection
from hoststream.errors import SinkFatalError, SinkUnavailableError
from hoststream.sinks.base import BatchingSink, SinkRecord
from hoststream.sinks.migrations import apply_migrations
from hoststream.sinks.sql_rows import (
    AGGREGATE_COLUMNS,
    AGGREGATE_KEY,
    ALERT_COLUMNS,
    ALERT_KEY,
    SqlRecord,
    aggregate_row,
    alert_row,
    latest_per_key,
    validate,
)
from hoststream.sinks.sql_schema import ALERTS, STAMPED, WINDOW_AGGREGATES

__all__ = ["SqlSink", "upsert_statement"]

log = logging.getLogger(__name__)

_SERIALIZATION_FAILURE = "40001"


class _ContentError(Exception):
    """The database refused the data of a statement (SQLSTATE class 22 or 23)."""


@cache
def upsert_statement(table: str, rows: int) -> sql.Composed:
    """``INSERT INTO <table> ... VALUES (...) x rows ON CONFLICT (<key>) DO UPDATE SET ...``.

    Aggregates: a later emission of the same window (late samples) replaces
    the earlier one. Alerts: an older event never overwrites a newer one.
    """
    columns: tuple[str, ...]
    key: tuple[str, ...]
    if table == WINDOW_AGGREGATES.name:
        columns, key, guard = AGGREGATE_COLUMNS, AGGREGATE_KEY, sql.SQL("")
    elif table == ALERTS.name:
        columns, key = ALERT_COLUMNS, ALERT_KEY
        guard = sql.SQL(" WHERE alerts.event_time <= excluded.event_time")
    else:
        raise ValueError(f"no upsert for table {table!r}")
    row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    updates: list[sql.Composable] = [
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in columns if c not in key
    ]
    updates.append(sql.SQL("{} = now()").format(sql.SQL(STAMPED)))
    return sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES {rows}"
        " ON CONFLICT ({key}) DO UPDATE SET {updates}{guard}"
    ).format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        rows=sql.SQL(", ").join([row] * rows),
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        updates=sql.SQL(", ").join(updates),
        guard=guard,
    )


class SqlSink(BatchingSink[SqlRecord]):
    """Stores window aggregates and alert events in CockroachDB or PostgreSQL.

    Args:
        dsn: a libpq connection string or URL (``HOSTSTREAM_SQL_DSN``).
        schema: the SQL schema of the tables, created if missing and put on
            the search path (default: the connection's search path).
        primary_region: CockroachDB only: the primary region for the
            multi-region migration (default: the cluster's first region).
        connect_timeout_s: how long connecting may take.
        statement_timeout_ms: the longest one statement may run.
        serialization_retries: how often a transaction that hit SQLSTATE 40001
            is retried at once before the batch is handed back for backoff.
        rows_per_statement: rows per multi-row INSERT.
        max_future_s: records stamped further ahead of this clock are refused.
        clock: seconds since the epoch; tests pass a fixed one.
    """

    name = "sql"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        primary_region: str | None = None,
        connect_timeout_s: float = 5.0,
        statement_timeout_ms: int = 30_000,
        serialization_retries: int = 5,
        rows_per_statement: int = 500,
        max_future_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._primary_region = primary_region
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_ms = statement_timeout_ms
        self._serialization_retries = serialization_retries
        self._rows_per_statement = rows_per_statement
        self._max_future_ms = int(max_future_s * 1000)
        self._clock = clock
        self._conn: psycopg.Connection[Any] | None = None
        self._migrated = False

    # -- contract -----------------------------------------------------------

    def check(self, value: SqlRecord) -> None:
        validate(value, int(self._clock() * 1000), self._max_future_ms)

    def write(self, batch: Sequence[SinkRecord[SqlRecord]]) -> Sequence[Rejection[SinkRecord[Any]]]:
        return self._write(list(batch))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def migrate(self) -> list[int]:
        """Connect and apply the schema migrations not applied yet; return their versions.

        Raises:
            SinkUnavailableError: the database did not answer.
            SinkFatalError: the database refused the migration.
        """
        return self._run(lambda conn: None) or []

    # -- writing ------------------------------------------------------------

    def _write(self, records: list[SinkRecord[SqlRecord]]) -> list[Rejection[SinkRecord[Any]]]:
        if not records:
            return []
        try:
            self._run(lambda conn: self._store(conn, [r.decoded for r in records]))
        except _ContentError as exc:
            if len(records) == 1:
                return [
                    Rejection(records[0], f"the database refused the record: {exc}", "SqlRejected")
                ]
            log.info("the database refused a batch of %d (%s); bisecting", len(records), exc)
            middle = len(records) // 2
            return self._write(records[:middle]) + self._write(records[middle:])
        return []

    def _store(self, conn: psycopg.Connection[Any], records: list[SqlRecord]) -> None:
        aggregates, alerts = latest_per_key(records)
        step = self._rows_per_statement
        with conn.transaction(), conn.cursor() as cursor:
            for table, rows in (
                (WINDOW_AGGREGATES.name, [aggregate_row(a) for a in aggregates]),
                (ALERTS.name, [alert_row(e) for e in alerts]),
            ):
                for start in range(0, len(rows), step):
                    chunk = rows[start : start + step]
                    params = [value for row in chunk for value in row]
                    cursor.execute(upsert_statement(table, len(chunk)), params)

    def _run(self, work: Callable[[psycopg.Connection[Any]], None]) -> list[int] | None:
        """Run ``work`` on a migrated connection, sorting failures by what to do about them."""
        attempt = 0
        while True:
            try:
                conn, applied = self._connection()
                work(conn)
                return applied
            except psycopg.Error as exc:
                sqlstate = getattr(exc, "sqlstate", None) or ""
                if sqlstate == _SERIALIZATION_FAILURE and attempt < self._serialization_retries:
                    attempt += 1
                    # A short randomised pause lets the conflicting transaction finish.
                    time.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311
                    continue
                self._discard_if_broken()
                raise self._classify(exc, sqlstate) from exc

    def _classify(self, exc: psycopg.Error, sqlstate: str) -> Exception:
        summary = f"{type(exc).__name__} (SQLSTATE {sqlstate or '-'}): {str(exc).strip()[:300]}"
        if sqlstate[:2] in ("22", "23"):
            return _ContentError(summary)
        if sqlstate[:2] in ("28", "42") or sqlstate == "3D000":
            return SinkFatalError(
                f"the database refused hoststream's statements: {summary};"
                " check HOSTSTREAM_SQL_DSN, the user's privileges and the schema"
            )
        return SinkUnavailableError(f"the database is unavailable: {summary}")

    # -- connection ---------------------------------------------------------

    def _connection(self) -> tuple[psycopg.Connection[Any], list[int] | None]:
        applied: list[int] | None = None
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=max(1, round(self._connect_timeout_s))
            )
            try:
                conn.execute(
                    sql.SQL("SET statement_timeout = {}").format(
                        sql.Literal(self._statement_timeout_ms)
                    )
                )
                if self._schema is not None:
                    schema = sql.Identifier(self._schema)
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                    conn.execute(sql.SQL("SET search_path TO {}").format(schema))
                if not self._migrated:
                    applied = apply_migrations(conn, primary_region=self._primary_region)
                    self._migrated = True
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn, applied

    def _discard_if_broken(self) -> None:
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            conn.close()
            self._conn = None

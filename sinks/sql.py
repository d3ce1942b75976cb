"""CockroachDB/PostgreSQL: window aggregates and alert events, written idempotently.

Each batch is one transaction per table: ``COPY`` into a temporary staging
table, then one ``INSERT ... SELECT ... ON CONFLICT ... DO UPDATE`` from it
(forms both databases accept), so writing a batch twice leaves the same rows.
``COPY`` costs the client and the server far less per row than a statement's
parameters, and the two statements never change, so nothing is re-planned
per batch. CockroachDB asks clients to retry transactions that
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
from hoststream.sinks.migrations import apply_migrations, is_cockroach
from hoststream.sinks.sql_copy import COPY_COLUMNS, copy_text
from hoststream.sinks.sql_errors import ErrorCause, cause_of
from hoststream.sinks.sql_rows import (
    AGGREGATE_COLUMNS,
    AGGREGATE_KEY,
    AGGREGATE_STAGING,
    ALERT_COLUMNS,
    ALERT_KEY,
    ALERT_STAGING,
    SqlRecord,
    Staging,
    alert_row,
    latest_per_key,
    validate,
)
from hoststream.sinks.sql_schema import ALERTS, STAMPED, WINDOW_AGGREGATES

__all__ = [
    "SqlSink",
    "clear_statement",
    "copy_statement",
    "staging_statements",
    "staging_table",
    "upsert_statement",
]

log = logging.getLogger(__name__)

_SERIALIZATION_FAILURE = "40001"


class _ContentError(Exception):
    """The database refused the data of a statement (:data:`ErrorCause.CONTENT`)."""


def _table(table: str) -> tuple[tuple[str, ...], tuple[str, ...], Staging]:
    if table == WINDOW_AGGREGATES.name:
        return AGGREGATE_COLUMNS, AGGREGATE_KEY, AGGREGATE_STAGING
    if table == ALERTS.name:
        return ALERT_COLUMNS, ALERT_KEY, ALERT_STAGING
    raise ValueError(f"no upsert for table {table!r}")


def _staged(table: str) -> list[tuple[str, str]]:
    """The staged columns of ``table``: name and staging type, in row order."""
    columns, _, staging = _table(table)
    return [(c, t) for c in columns if (t := staging[c][0]) is not None]


def staging_table(table: str) -> str:
    """The session's temporary table that a batch for ``table`` is copied into."""
    _table(table)
    return f"staged_{table}"


@cache
def staging_statements(table: str, *, cockroach: bool) -> tuple[sql.Composed, ...]:
    """Create the session's staging table for ``table``.

    PostgreSQL empties it at every commit. CockroachDB has temporary tables
    only behind a session setting and knows no ``ON COMMIT`` clause, so there
    :func:`clear_statement` empties it inside the batch's transaction.
    """
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in _staged(table)
    )
    create = sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}){}").format(
        sql.Identifier(staging_table(table)),
        columns,
        sql.SQL("") if cockroach else sql.SQL(" ON COMMIT DELETE ROWS"),
    )
    if cockroach:
        return (sql.SQL("SET experimental_enable_temp_tables = 'on'").format(), create)
    return (create,)


@cache
def copy_statement(table: str, columns: tuple[str, ...] | None = None) -> sql.Composed:
    """``COPY staged_<table> (...) FROM STDIN``: the rows of :mod:`sinks.sql_rows`, as text.

    ``columns``: the staged columns in the order the rows carry them
    (default: the table's order).
    """
    staged = [c for c, _ in _staged(table)]
    if columns is not None and sorted(columns) != sorted(staged):
        raise ValueError(f"{columns} are not the staged columns of {table!r}")
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(staging_table(table)),
        sql.SQL(", ").join(sql.Identifier(c) for c in (columns or staged)),
    )


@cache
def clear_statement(table: str) -> sql.Composed:
    """Empty the staging table (CockroachDB, where it is not emptied on commit)."""
    return sql.SQL("DELETE FROM {}").format(sql.Identifier(staging_table(table)))


@cache
def upsert_statement(table: str, rows: int = 0) -> sql.Composed:
    """``INSERT INTO <table> ... SELECT ... FROM <staged rows> ON CONFLICT (<key>) DO UPDATE``.

    The staged rows are the staging table, or with ``rows`` > 0 a ``VALUES``
    list of that many rows of parameters (one row at a time, for comparison).
    Aggregates: a later emission of the same window (late samples) replaces
    the earlier one. Alerts: an older event never overwrites a newer one.
    """
    columns, key, staging = _table(table)
    guard = (
        sql.SQL(" WHERE alerts.event_time <= excluded.event_time")
        if table == ALERTS.name
        else sql.SQL("")
    )
    staged = _staged(table)
    source: sql.Composable
    if rows > 0:
        row = sql.SQL("({})").format(
            sql.SQL(", ").join(sql.SQL("CAST(%s AS {})").format(sql.SQL(t)) for _, t in staged)
        )
        source = sql.SQL("(VALUES {}) AS staged ({})").format(
            sql.SQL(", ").join([row] * rows),
            sql.SQL(", ").join(sql.Identifier(c) for c, _ in staged),
        )
    else:
        source = sql.Identifier(staging_table(table))
    values = [
        sql.SQL(staging[c][1]).format(sql.Identifier(c) if staging[c][0] else sql.SQL(""))
        for c in columns
    ]
    updates: list[sql.Composable] = [
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in columns if c not in key
    ]
    updates.append(sql.SQL("{} = now()").format(sql.SQL(STAMPED)))
    return sql.SQL(
        "INSERT INTO {table} ({columns}) SELECT {values} FROM {source}"
        " ON CONFLICT ({key}) DO UPDATE SET {updates}{guard}"
    ).format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(values),
        source=source,
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
        max_future_s: records stamped further ahead of this clock are refused.
        clock: seconds since the epoch; tests pass a fixed one.
    """

    name = "sql"
    # About half of a batch's time is the database's (COPY, the upsert and
    # the commit): the loop reads, decodes and checks the next batch meanwhile.
    write_ahead = True

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        primary_region: str | None = None,
        connect_timeout_s: float = 5.0,
        statement_timeout_ms: int = 30_000,
        serialization_retries: int = 5,
        max_future_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._primary_region = primary_region
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_ms = statement_timeout_ms
        self._serialization_retries = serialization_retries
        self._max_future_ms = int(max_future_s * 1000)
        self._clock = clock
        self._conn: psycopg.Connection[Any] | None = None
        self._cockroach = False
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
        with conn.transaction(), conn.cursor() as cursor:
            if aggregates:
                # The batch's rows as one block of COPY text (sinks.sql_copy).
                table = WINDOW_AGGREGATES.name
                with cursor.copy(copy_statement(table, COPY_COLUMNS)) as copy:
                    copy.write(copy_text(aggregates))
                self._upsert(cursor, table)
            if alerts:
                with cursor.copy(copy_statement(ALERTS.name)) as copy:
                    for alert in alerts:
                        copy.write_row(alert_row(alert))
                self._upsert(cursor, ALERTS.name)

    def _upsert(self, cursor: psycopg.Cursor[Any], table: str) -> None:
        """Move the staged rows of ``table`` into it."""
        cursor.execute(upsert_statement(table))
        if self._cockroach:
            cursor.execute(clear_statement(table))

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
        cause = cause_of(exc, sqlstate)
        if cause is ErrorCause.CONTENT:
            return _ContentError(summary)
        if cause is ErrorCause.CONFIGURATION:
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
                self._cockroach = is_cockroach(conn)
                for table in (WINDOW_AGGREGATES.name, ALERTS.name):
                    for statement in staging_statements(table, cockroach=self._cockroach):
                        conn.execute(statement)
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

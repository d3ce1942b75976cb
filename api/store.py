"""Reading aggregates and alerts from CockroachDB/PostgreSQL.

Every query is parameterised, bounded by a LIMIT, and served by the primary
keys and indexes of the SQL sink's migrations (``sinks/migrations``). Tables
and columns are named through their definitions in
:mod:`hoststream.sinks.sql_schema`, the ones the sink writes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from hoststream.schemas.statistics import STATISTIC_FIELDS
from hoststream.sinks.sql_schema import ALERTS, ALERTS_CURRENT, WINDOW_AGGREGATES, Table

__all__ = [
    "AggregateQuery",
    "AlertQuery",
    "decode_cursor",
    "encode_cursor",
    "fetch_aggregates",
    "fetch_alerts",
]

#: A UTC-milliseconds parameter as a TIMESTAMPTZ.
MS = sql.SQL("to_timestamp(%s::BIGINT / 1000.0)")


def _columns(table: Table, *names: str) -> list[sql.Composable]:
    return [table.column(name) for name in names]


def _millis(table: Table, name: str) -> sql.Composed:
    # Timestamps are TIMESTAMPTZ in the tables and UTC milliseconds in the API.
    return sql.SQL("(extract(epoch FROM {}) * 1000)::BIGINT AS {}").format(
        table.column(name), sql.Identifier(f"{name}_ms")
    )


_AGGREGATE_COLUMNS = sql.SQL(", ").join(
    [
        *_columns(WINDOW_AGGREGATES, "host", "metric", "labels", "labels_key", "window_size_ms"),
        _millis(WINDOW_AGGREGATES, "window_start"),
        _millis(WINDOW_AGGREGATES, "window_end"),
        *_columns(WINDOW_AGGREGATES, *STATISTIC_FIELDS),
    ]
)
_ALERT_COLUMNS = sql.SQL(", ").join(
    [
        *_columns(ALERTS, "dedup_key", "rule", "state", "severity", "host", "metric"),
        *_columns(ALERTS, "labels", "annotations", "value", "threshold"),
        _millis(ALERTS, "starts_at"),
        _millis(ALERTS, "ends_at"),
    ]
)


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def decode_cursor(cursor: str) -> list[Any]:
    """The keyset position a cursor names; ValueError if it is not one of ours."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("malformed cursor") from exc
    if not isinstance(values, list):
        raise ValueError("malformed cursor")
    return values


async def _fetch(
    pool: AsyncConnectionPool, statement: sql.Composed, params: list[Any]
) -> list[dict[str, Any]]:
    try:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(statement, params)
            return await cur.fetchall()
    except psycopg.errors.UndefinedTable:
        # The SQL sink creates the tables when it first starts; until then
        # nothing has been stored, which is an empty answer, not an outage.
        return []


@dataclass(frozen=True)
class AggregateQuery:
    host: str
    metric: str
    window_size_ms: int
    start_ms: int
    end_ms: int
    limit: int
    after: list[Any] | None = None  # (window_start_ms, labels_key) of the last row seen


async def fetch_aggregates(
    pool: AsyncConnectionPool, query: AggregateQuery
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """One page of aggregates in (window start, labels) order, and the next page's position."""
    column = WINDOW_AGGREGATES.column
    names = {"start": column("window_start"), "labels_key": column("labels_key")}
    params: list[Any] = [
        query.host,
        query.metric,
        query.window_size_ms,
        query.start_ms,
        query.end_ms,
    ]
    keyset: sql.Composable = sql.SQL("")
    if query.after is not None:
        keyset = sql.SQL("AND ({start}, {labels_key}) > ({ms}, %s) ").format(**names, ms=MS)
        params += [int(query.after[0]), str(query.after[1])]
    params.append(query.limit + 1)
    statement = sql.SQL(
        "SELECT {columns} FROM {table} "
        "WHERE {host} = %s AND {metric} = %s AND {window_size_ms} = %s "
        "AND {start} >= {ms} AND {start} < {ms} {keyset}"
        "ORDER BY {start}, {labels_key} LIMIT %s"
    ).format(
        columns=_AGGREGATE_COLUMNS,
        table=sql.Identifier(WINDOW_AGGREGATES.name),
        ms=MS,
        keyset=keyset,
        host=column("host"),
        metric=column("metric"),
        window_size_ms=column("window_size_ms"),
        **names,
    )
    rows = await _fetch(pool, statement, params)
    page, more = rows[: query.limit], len(rows) > query.limit
    position = [page[-1]["window_start_ms"], page[-1]["labels_key"]] if more and page else None
    return page, position


@dataclass(frozen=True)
class AlertQuery:
    state: str | None
    host: str | None
    severity: str | None
    limit: int
    after: list[Any] | None = None  # (starts_at_ms, dedup_key) of the last row seen


async def fetch_alerts(
    pool: AsyncConnectionPool, query: AlertQuery
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """One page of alerts, newest first, and the next page's position."""
    order = _columns(ALERTS, "starts_at", "dedup_key")
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in (
        ("state", query.state),
        ("host", query.host),
        ("severity", query.severity),
    ):
        if value is not None:
            conditions.append(sql.SQL("{} = %s").format(ALERTS.column(column)))
            params.append(value)
    if query.after is not None:
        conditions.append(sql.SQL("({}, {}) < ({}, %s)").format(*order, MS))
        params += [int(query.after[0]), str(query.after[1])]
    where = (
        sql.SQL("WHERE {} ").format(sql.SQL(" AND ").join(conditions))
        if conditions
        else sql.SQL("")
    )
    # One row per alert, in its latest state (the table keeps every transition).
    statement = sql.SQL(
        "SELECT {columns} FROM {view} {where}ORDER BY {0} DESC, {1} DESC LIMIT %s"
    ).format(*order, columns=_ALERT_COLUMNS, view=sql.Identifier(ALERTS_CURRENT), where=where)
    params.append(query.limit + 1)
    rows = await _fetch(pool, statement, params)
    page, more = rows[: query.limit], len(rows) > query.limit
    position = [page[-1]["starts_at_ms"], page[-1]["dedup_key"]] if more and page else None
    return page, position

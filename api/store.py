"""Reading aggregates and alerts from CockroachDB/PostgreSQL.

Every query is parameterised, bounded by a LIMIT, and served by the primary
keys and indexes of the SQL sink's migrations (``sinks/migrations``).
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

__all__ = [
    "AggregateQuery",
    "AlertQuery",
    "decode_cursor",
    "encode_cursor",
    "fetch_aggregates",
    "fetch_alerts",
]

# Timestamps are TIMESTAMPTZ in the tables and UTC milliseconds in the API.
AGGREGATE_COLUMNS = (
    "host, metric, labels, labels_key, window_size_ms, "
    "(extract(epoch FROM window_start) * 1000)::BIGINT AS window_start_ms, "
    "(extract(epoch FROM window_end) * 1000)::BIGINT AS window_end_ms, "
    "count, sum, min, max, mean, last, p50, p90, p95, p99, rate_per_second"
)
#: A UTC-milliseconds parameter as a TIMESTAMPTZ.
MS = sql.SQL("to_timestamp(%s::BIGINT / 1000.0)")


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
    params: list[Any] = [
        query.host,
        query.metric,
        query.window_size_ms,
        query.start_ms,
        query.end_ms,
    ]
    keyset: sql.Composable = sql.SQL("")
    if query.after is not None:
        keyset = sql.SQL("AND (window_start, labels_key) > ({}, %s) ").format(MS)
        params += [int(query.after[0]), str(query.after[1])]
    params.append(query.limit + 1)
    statement = sql.SQL(
        "SELECT {columns} FROM window_aggregates "
        "WHERE host = %s AND metric = %s AND window_size_ms = %s "
        "AND window_start >= {ms} AND window_start < {ms} {keyset}"
        "ORDER BY window_start, labels_key LIMIT %s"
    ).format(columns=sql.SQL(AGGREGATE_COLUMNS), ms=MS, keyset=keyset)
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
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    for column, value in (
        ("state", query.state),
        ("host", query.host),
        ("severity", query.severity),
    ):
        if value is not None:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if query.after is not None:
        conditions.append(sql.SQL("(starts_at, dedup_key) < ({}, %s)").format(MS))
        params += [int(query.after[0]), str(query.after[1])]
    where = (
        sql.SQL("WHERE {} ").format(sql.SQL(" AND ").join(conditions))
        if conditions
        else sql.SQL("")
    )
    statement = sql.SQL(
        "SELECT dedup_key, rule, state, severity, host, metric, labels, annotations, value, "
        "threshold, (extract(epoch FROM starts_at) * 1000)::BIGINT AS starts_at_ms, "
        "(extract(epoch FROM ends_at) * 1000)::BIGINT AS ends_at_ms "
        # One row per alert, in its latest state (the table keeps every transition).
        "FROM alerts_current {where}"
        "ORDER BY starts_at DESC, dedup_key DESC LIMIT %s"
    ).format(where=where)
    params.append(query.limit + 1)
    rows = await _fetch(pool, statement, params)
    page, more = rows[: query.limit], len(rows) > query.limit
    position = [page[-1]["starts_at_ms"], page[-1]["dedup_key"]] if more and page else None
    return page, position

"""Aggregates and alerts as the SQL sink stored them."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query

from hoststream.api.auth import Principal
from hoststream.api.context import ApiContext, context, require
from hoststream.api.models import UTC_MS, AggregateOut, AggregatePage, AlertOut, AlertPage
from hoststream.api.routes.hosts import HOST_PATTERN
from hoststream.api.store import (
    AggregateQuery,
    AlertQuery,
    decode_cursor,
    encode_cursor,
    fetch_aggregates,
    fetch_alerts,
)
from hoststream.streams.windows import WindowSize

__all__ = ["MAX_RANGE_MS", "router"]

router = APIRouter()

#: A query spans at most 31 days; pages hold at most 1,000 rows.
MAX_RANGE_MS = 31 * 86_400_000
#: 9999-12-31T23:59:59.999Z: later instants overflow PostgreSQL's timestamps.
MAX_TIME_MS = 253_402_300_799_999


def window_ms(window: str) -> int:
    """The length of a window named as its topics and series name it (``1m``), in ms."""
    try:
        size = WindowSize.parse(window)
    except ValueError:  # not a size, or a zero-length one
        size = None
    # Stricter than WindowSize.parse, which also takes a bare number of seconds.
    if size is None or not re.fullmatch(r"[0-9]{1,6}(ms|s|m|h|d)", window):
        raise HTTPException(422, f"window {window!r} is not like 10s, 1m or 5m")
    return size.ms


def _cursor(cursor: str | None) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        values = decode_cursor(cursor)
    except ValueError as exc:
        raise HTTPException(422, "cursor is not one this API gave out") from exc
    # A cursor comes back from the client: check it holds what encode_cursor put
    # in (an instant in range and a string key) before it reaches SQL.
    if (
        len(values) != 2
        or type(values[0]) is not int
        or not 0 <= values[0] <= MAX_TIME_MS
        or not isinstance(values[1], str)
        or "\x00" in values[1]  # PostgreSQL text cannot hold NUL
    ):
        raise HTTPException(422, "cursor is not one this API gave out")
    return values


def _unavailable(exc: psycopg.Error) -> HTTPException:
    return HTTPException(503, f"the database did not answer ({type(exc).__name__})")


@router.get("/api/v1/aggregates", response_model=AggregatePage, tags=["aggregates"])
async def aggregates(
    ctx: Annotated[ApiContext, Depends(context)],
    _: Annotated[Principal, Depends(require("read:metrics"))],
    host: Annotated[str, Query(pattern=HOST_PATTERN)],
    metric: Annotated[str, Query(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")],
    window: Annotated[str, Query(max_length=10)] = "1m",
    start: Annotated[
        int | None,
        Query(ge=0, le=MAX_TIME_MS, description=f"first window start; {UTC_MS}; default end - 1 h"),
    ] = None,
    end: Annotated[
        int | None,
        Query(ge=0, le=MAX_TIME_MS, description=f"windows start before it; {UTC_MS}; default now"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AggregatePage:
    """A host's aggregates of one metric and window size in a time range (default: last hour)."""
    end_ms = end if end is not None else int(time.time() * 1000)
    start_ms = start if start is not None else end_ms - 3_600_000
    if start_ms >= end_ms:
        raise HTTPException(422, "start must be before end")
    if end_ms - start_ms > MAX_RANGE_MS:
        raise HTTPException(422, "the range may span at most 31 days")
    query = AggregateQuery(
        host, metric, window_ms(window), start_ms, end_ms, limit, _cursor(cursor)
    )
    try:
        rows, position = await fetch_aggregates(ctx.pool, query)
    except psycopg.Error as exc:
        raise _unavailable(exc) from exc
    # A row's columns carry the model's field names (the store selects them
    # through the table's definition); only the instants are renamed, to milliseconds.
    items = [
        AggregateOut(
            **r, window=window, window_start=r["window_start_ms"], window_end=r["window_end_ms"]
        )
        for r in rows
    ]
    return AggregatePage(items=items, next_cursor=encode_cursor(position) if position else None)


@router.get("/api/v1/alerts", response_model=AlertPage, tags=["alerts"])
async def alerts(
    ctx: Annotated[ApiContext, Depends(context)],
    _: Annotated[Principal, Depends(require("read:alerts"))],
    state: Annotated[str | None, Query(pattern="^(firing|resolved)$")] = None,
    host: Annotated[str | None, Query(pattern=HOST_PATTERN)] = None,
    severity: Annotated[str | None, Query(pattern=r"^[a-z]{1,20}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AlertPage:
    """Alerts, newest first, by state, host and severity."""
    query = AlertQuery(state.upper() if state else None, host, severity, limit, _cursor(cursor))
    try:
        rows, position = await fetch_alerts(ctx.pool, query)
    except psycopg.Error as exc:
        raise _unavailable(exc) from exc
    items = [
        AlertOut(
            **{**r, "state": r["state"].lower()},
            starts_at=r["starts_at_ms"],
            ends_at=r["ends_at_ms"],
        )
        for r in rows
    ]
    return AlertPage(items=items, next_cursor=encode_cursor(position) if position else None)

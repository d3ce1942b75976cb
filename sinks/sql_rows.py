"""How aggregates and alerts become rows of ``window_aggregates`` and ``alerts``.

Pure functions, so the SQL sink's statements and validation are tested
without a database.

A row travels in plain types, the ones ``COPY`` and a staging table carry
cheaply: timestamps as UTC milliseconds and label sets as JSON text. The
upsert turns them into ``TIMESTAMPTZ`` and ``JSONB`` on the database side
(:data:`AGGREGATE_STAGING`, :data:`ALERT_STAGING`), so the client builds no
datetime or JSONB object per row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from hoststream.errors import InvalidRecordError
from hoststream.schemas import AlertEvent, WindowAggregate
from hoststream.schemas.statistics import STATISTIC_FIELDS
from hoststream.sinks.aggregate_reader import AggregateValues
from hoststream.sinks.sql_schema import ALERTS, WINDOW_AGGREGATES, Table

__all__ = [
    "AGGREGATE_COLUMNS",
    "AGGREGATE_KEY",
    "AGGREGATE_STAGING",
    "ALERT_COLUMNS",
    "ALERT_KEY",
    "ALERT_STAGING",
    "SqlRecord",
    "Staging",
    "aggregate_row",
    "alert_row",
    "canonical_labels",
    "latest_per_key",
    "validate",
]

#: Window aggregates arrive as :class:`AggregateValues` once their series is
#: known (:mod:`sinks.sql_copy`), else decoded in full.
SqlRecord = AggregateValues | WindowAggregate | AlertEvent
#: Per column: its type in the staging table (None: not staged), and the SQL
#: expression over the staged columns that gives the stored value.
Staging = dict[str, tuple[str | None, str]]

AGGREGATE_KEY = WINDOW_AGGREGATES.key
AGGREGATE_COLUMNS = WINDOW_AGGREGATES.written
ALERT_KEY = ALERTS.key
ALERT_COLUMNS = ALERTS.written

# Timestamps travel as UTC milliseconds, label sets as canonical JSON text.
_MS_TO_TIMESTAMP = "to_timestamp(CAST({0} AS DOUBLE PRECISION) / 1000)"
_JSON_TO_JSONB = "CAST({0} AS JSONB)"


def _staging(table: Table, computed: Mapping[str, str]) -> Staging:
    """Each written column of ``table`` staged in a plain type, unless ``computed`` gives it."""
    staging: Staging = {}
    for name, sql_type in table.columns:
        if name not in table.written:
            continue
        if name in computed:
            staging[name] = (None, computed[name])
            continue
        plain = sql_type.removesuffix(" NOT NULL")
        if plain == "TIMESTAMPTZ":
            staging[name] = ("BIGINT", _MS_TO_TIMESTAMP)
        elif plain == "JSONB":
            staging[name] = ("TEXT", _JSON_TO_JSONB)
        else:
            staging[name] = (plain, "{0}")
    return staging


#: How the columns of ``window_aggregates`` are staged: ``labels`` is not sent,
#: as ``labels_key`` is its canonical JSON already.
AGGREGATE_STAGING = _staging(WINDOW_AGGREGATES, {"labels": 'CAST("labels_key" AS JSONB)'})
#: How the columns of ``alerts`` are staged.
ALERT_STAGING = _staging(ALERTS, {})

# 2000-01-01T00:00:00Z: hoststream has no data from before; earlier means a unit mix-up.
_EARLIEST_MS = 946_684_800_000


#: Canonical JSON by label items in arrival order. A series' labels decode in the
#: same order every time, so nearly every row hits; bounded by clearing when full.
_CANONICAL: dict[tuple[tuple[str, str], ...], str] = {}
_CANONICAL_MAX = 200_000


def canonical_labels(labels: Mapping[str, str]) -> str:
    """The label set as JSON with sorted keys: equal sets give equal text."""
    items = tuple(labels.items())
    text = _CANONICAL.get(items)
    if text is None:
        if len(_CANONICAL) >= _CANONICAL_MAX:
            _CANONICAL.clear()
        text = json.dumps(dict(items), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        _CANONICAL[items] = text
    return text


def aggregate_row(a: WindowAggregate) -> tuple[Any, ...]:
    """The staged values of :data:`AGGREGATE_COLUMNS`, in order, ``labels`` left out."""
    return (
        a.host,
        a.metric,
        canonical_labels(a.labels),
        a.window_size_ms,
        a.window_start,
        a.window_end,
        a.kind.value,
        *(getattr(a, field) for field in STATISTIC_FIELDS),
        a.quantile_relative_error,
        a.region,
    )


def alert_row(e: AlertEvent) -> tuple[Any, ...]:
    """The staged values of :data:`ALERT_COLUMNS`, in order."""
    return (
        e.dedup_key,
        e.starts_at,
        e.state.value,
        e.rule,
        e.severity,
        e.host,
        e.metric,
        canonical_labels(e.series_labels),
        canonical_labels(e.labels),
        canonical_labels(e.annotations),
        e.value,
        e.threshold,
        e.ends_at,
        e.window_end,
        e.event_time,
        e.region,
    )


def latest_per_key(
    records: Iterable[SqlRecord],
) -> tuple[list[AggregateValues | WindowAggregate], list[AlertEvent]]:
    """One record per primary key, the latest winning.

    A multi-row ``INSERT ... ON CONFLICT DO UPDATE`` may not touch a row
    twice. For aggregates Kafka's order decides (one key, one partition); for
    alerts the rule engine's ``event_time`` does. An aggregate read by its
    series' shape carries its key in the shape (its ``derived`` is a
    :class:`~sinks.sql_copy.SeriesText`).
    """
    aggregates: dict[tuple[Any, ...], AggregateValues | WindowAggregate] = {}
    alerts: dict[tuple[Any, ...], AlertEvent] = {}
    for record in records:
        if isinstance(record, AggregateValues):
            aggregates[(record.shape.derived.key, record.window_start)] = record
        elif isinstance(record, WindowAggregate):
            series = (
                record.host,
                record.metric,
                canonical_labels(record.labels),
                record.window_size_ms,
            )
            aggregates[(series, record.window_start)] = record
        else:
            akey = (record.dedup_key, record.starts_at, record.state)
            seen = alerts.get(akey)
            if seen is None or record.event_time >= seen.event_time:
                alerts[akey] = record
    return list(aggregates.values()), list(alerts.values())


def _timestamp(ms: int, name: str, newest_ms: int) -> None:
    if not _EARLIEST_MS <= ms <= newest_ms:
        raise InvalidRecordError(
            f"{name} {ms} lies outside [{_EARLIEST_MS}, {newest_ms}] (UTC milliseconds)"
        )


def validate(record: SqlRecord, now_ms: int, max_future_ms: int) -> None:
    """Raise :class:`InvalidRecordError` if ``record``'s instants are no row's.

    Before 2000 or beyond the accepted clock skew is a unit mix-up, not data.
    What else PostgreSQL would refuse or misstore (NUL characters, values that
    are not finite, windows, empty keys) is the validation contract's
    (:mod:`hoststream.schemas.validation`), which the sink's consumer applies
    to every record before the sink's own check.
    """
    newest = now_ms + max_future_ms
    if isinstance(record, AggregateValues | WindowAggregate):
        _timestamp(record.window_start, "window_start", newest)
        return
    for name in ("starts_at", "window_end", "event_time"):
        _timestamp(getattr(record, name), name, newest)
    if record.ends_at is not None:
        _timestamp(record.ends_at, "ends_at", newest)

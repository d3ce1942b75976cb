"""How aggregates and alerts become rows of ``window_aggregates`` and ``alerts``.

Pure functions, so the SQL sink's statements and validation are tested
without a database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from hoststream.errors import InvalidRecordError
from hoststream.schemas import AlertEvent, WindowAggregate
from hoststream.schemas.statistics import STATISTIC_FIELDS
from hoststream.sinks.sql_schema import ALERTS, WINDOW_AGGREGATES

__all__ = [
    "AGGREGATE_COLUMNS",
    "AGGREGATE_KEY",
    "ALERT_COLUMNS",
    "ALERT_KEY",
    "SqlRecord",
    "aggregate_row",
    "alert_row",
    "canonical_labels",
    "latest_per_key",
    "validate",
]

SqlRecord = WindowAggregate | AlertEvent

AGGREGATE_KEY = WINDOW_AGGREGATES.key
AGGREGATE_COLUMNS = WINDOW_AGGREGATES.written
ALERT_KEY = ALERTS.key
ALERT_COLUMNS = ALERTS.written

# 2000-01-01T00:00:00Z: hoststream has no data from before; earlier means a unit mix-up.
_EARLIEST_MS = 946_684_800_000


def canonical_labels(labels: Mapping[str, str]) -> str:
    """The label set as JSON with sorted keys: equal sets give equal text."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def aggregate_row(a: WindowAggregate) -> tuple[Any, ...]:
    """The values of :data:`AGGREGATE_COLUMNS`, in order."""
    return (
        a.host,
        a.metric,
        canonical_labels(a.labels),
        a.window_size_ms,
        _utc(a.window_start),
        _utc(a.window_end),
        Jsonb(dict(a.labels)),
        a.kind.value,
        *(getattr(a, field) for field in STATISTIC_FIELDS),
        a.quantile_relative_error,
    )


def alert_row(e: AlertEvent) -> tuple[Any, ...]:
    """The values of :data:`ALERT_COLUMNS`, in order."""
    return (
        e.dedup_key,
        _utc(e.starts_at),
        e.state.value,
        e.rule,
        e.severity,
        e.host,
        e.metric,
        Jsonb(dict(e.series_labels)),
        Jsonb(dict(e.labels)),
        Jsonb(dict(e.annotations)),
        e.value,
        e.threshold,
        None if e.ends_at is None else _utc(e.ends_at),
        _utc(e.window_end),
        _utc(e.event_time),
    )


def latest_per_key(
    records: Iterable[SqlRecord],
) -> tuple[list[WindowAggregate], list[AlertEvent]]:
    """One record per primary key, the latest winning.

    A multi-row ``INSERT ... ON CONFLICT DO UPDATE`` may not touch a row
    twice. For aggregates Kafka's order decides (one key, one partition); for
    alerts the rule engine's ``event_time`` does.
    """
    aggregates: dict[tuple[Any, ...], WindowAggregate] = {}
    alerts: dict[tuple[Any, ...], AlertEvent] = {}
    for record in records:
        if isinstance(record, WindowAggregate):
            key = (
                record.host,
                record.metric,
                canonical_labels(record.labels),
                record.window_size_ms,
                record.window_start,
            )
            aggregates[key] = record
        else:
            akey = (record.dedup_key, record.starts_at, record.state)
            seen = alerts.get(akey)
            if seen is None or record.event_time >= seen.event_time:
                alerts[akey] = record
    return list(aggregates.values()), list(alerts.values())


def _strings(values: Iterable[str], what: str) -> None:
    for value in values:
        # PostgreSQL's TEXT cannot hold NUL; the insert would fail for the whole batch.
        if "\x00" in value:
            raise InvalidRecordError(f"{what} contains a NUL character")


def _finite(values: Sequence[tuple[str, float | None]]) -> None:
    for name, value in values:
        if value is not None and not math.isfinite(value):
            raise InvalidRecordError(f"{name} is {value}; only finite values are stored")


def _timestamp(ms: int, name: str, newest_ms: int) -> None:
    if not _EARLIEST_MS <= ms <= newest_ms:
        raise InvalidRecordError(
            f"{name} {ms} lies outside [{_EARLIEST_MS}, {newest_ms}] (UTC milliseconds)"
        )


def validate(record: SqlRecord, now_ms: int, max_future_ms: int) -> None:
    """Raise :class:`InvalidRecordError` if ``record`` cannot be stored as it is."""
    newest = now_ms + max_future_ms
    if isinstance(record, WindowAggregate):
        a = record
        if not a.host or not a.metric:
            raise InvalidRecordError("empty host or metric")
        if a.window_size_ms <= 0 or a.window_end != a.window_start + a.window_size_ms:
            raise InvalidRecordError(
                f"window [{a.window_start}, {a.window_end}) does not span"
                f" window_size_ms={a.window_size_ms}"
            )
        if a.count < 1:
            raise InvalidRecordError(f"count is {a.count}; a window holds at least one sample")
        _timestamp(a.window_start, "window_start", newest)
        _strings([a.host, a.metric, *a.labels, *a.labels.values()], "a label or name")
        numbers = (*STATISTIC_FIELDS, "quantile_relative_error")
        _finite([(name, getattr(a, name)) for name in numbers])
        return
    e = record
    if not e.dedup_key:
        raise InvalidRecordError("empty dedup_key")
    for name in ("starts_at", "window_end", "event_time"):
        _timestamp(getattr(e, name), name, newest)
    if e.ends_at is not None:
        _timestamp(e.ends_at, "ends_at", newest)
    texts = [e.dedup_key, e.rule, e.severity, e.host, e.metric]
    for mapping in (e.series_labels, e.labels, e.annotations):
        texts += [*mapping.keys(), *mapping.values()]
    _strings(texts, "a field")
    _finite([("value", e.value), ("threshold", e.threshold)])

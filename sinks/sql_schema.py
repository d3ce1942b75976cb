"""The SQL tables: the one definition the SQL sink writes and the API reads.

The migrations in :mod:`hoststream.sinks.migrations` create these tables
(the first one as they are defined here); a change here goes with a new
migration that brings existing databases to it.

Timestamps are TIMESTAMPTZ (UTC), labels JSONB for querying plus their
canonical JSON text as part of the key: JSONB is not indexable as a primary
key column in CockroachDB, and the text form makes equal label sets equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from hoststream.schemas.statistics import STATISTICS

__all__ = ["ALERTS", "ALERTS_CURRENT", "STAMPED", "WINDOW_AGGREGATES", "Table"]

#: The column the database stamps on every insert and update; never written by the sink.
STAMPED = "updated_at"

_TEXT = "TEXT NOT NULL"
_BIGINT = "BIGINT NOT NULL"
_FLOAT = "DOUBLE PRECISION NOT NULL"
_TIME = "TIMESTAMPTZ NOT NULL"
_JSON = "JSONB NOT NULL"
#: The region whose stream processor made the row's record (``HOSTSTREAM_REGION``);
#: NULL for records from before regions. Not part of any key: a host belongs to one
#: region, and a record mirrored into another region must update the same row.
_REGION = ("region", "TEXT")


@dataclass(frozen=True, slots=True)
class Table:
    """A table: its columns (name -> SQL type) in order, and its primary key.

    ``key`` names the key's columns in the order rows carry them; the order a
    migration stored the key's index in may differ (``window_aggregates``:
    :mod:`~hoststream.sinks.migrations.m0004_api_key_order`).
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]

    def __post_init__(self) -> None:
        # The sink builds a row's values key first, as :attr:`written` lists them.
        if self.written[: len(self.key)] != self.key:
            raise ValueError(f"table {self.name}: the key columns {self.key} must come first")

    @property
    def written(self) -> tuple[str, ...]:
        """The columns the sink writes, key first: all but :data:`STAMPED`."""
        return tuple(name for name, _ in self.columns if name != STAMPED)

    def column(self, name: str) -> sql.Identifier:
        """One column's name for a composed statement; KeyError if the table has no such column."""
        if name not in dict(self.columns):
            raise KeyError(f"table {self.name} has no column {name!r}")
        return sql.Identifier(name)

    def create_statement(self) -> str:
        """``CREATE TABLE IF NOT EXISTS`` with every column and the primary key."""
        lines = [f"{name} {sql_type}" for name, sql_type in self.columns]
        lines.append(f"PRIMARY KEY ({', '.join(self.key)})")
        body = ",\n    ".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body}\n)"


def _table(name: str, key: tuple[str, ...], *columns: tuple[str, str]) -> Table:
    return Table(name, (*columns, (STAMPED, "TIMESTAMPTZ NOT NULL DEFAULT now()")), key)


WINDOW_AGGREGATES = _table(
    "window_aggregates",
    ("host", "metric", "labels_key", "window_size_ms", "window_start"),
    ("host", _TEXT),
    ("metric", _TEXT),
    ("labels_key", _TEXT),
    ("window_size_ms", _BIGINT),
    ("window_start", _TIME),
    ("window_end", _TIME),
    ("labels", _JSON),
    ("kind", _TEXT),
    *(
        (s.field, _BIGINT if s.integer else "DOUBLE PRECISION" if s.optional else _FLOAT)
        for s in STATISTICS
    ),
    ("quantile_relative_error", _FLOAT),
    _REGION,
)

#: Every transition of an alert, one row each.
ALERTS = _table(
    "alerts",
    ("dedup_key", "starts_at", "state"),
    ("dedup_key", _TEXT),
    ("starts_at", _TIME),
    ("state", _TEXT),
    ("rule", _TEXT),
    ("severity", _TEXT),
    ("host", _TEXT),
    ("metric", _TEXT),
    ("series_labels", _JSON),
    ("labels", _JSON),
    ("annotations", _JSON),
    ("value", _FLOAT),
    ("threshold", _FLOAT),
    ("ends_at", "TIMESTAMPTZ"),
    ("window_end", _TIME),
    ("event_time", _TIME),
    _REGION,
)

#: A view of :data:`ALERTS` with one row per alert ``(dedup_key, starts_at)``, in its
#: latest state (RESOLVED once it has resolved).
ALERTS_CURRENT = "alerts_current"

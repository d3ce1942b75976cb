"""Version 1: window aggregates, alerts, and a view of each alert's latest state."""

from __future__ import annotations

from hoststream.sinks.sql_schema import ALERTS, WINDOW_AGGREGATES

__all__ = ["NAME", "REGIONAL_TABLES", "STATEMENTS"]

NAME = "window aggregates and alerts"

# The tables as :mod:`hoststream.sinks.sql_schema` defines them.
STATEMENTS = (
    WINDOW_AGGREGATES.create_statement(),
    # The API asks "metric X over window W between start and end" across hosts.
    """
    CREATE INDEX IF NOT EXISTS window_aggregates_by_metric
        ON window_aggregates (metric, window_size_ms, window_start)
    """,
    ALERTS.create_statement(),
    "CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts (state, starts_at)",
    # One row per alert (dedup_key, starts_at): RESOLVED once it has resolved.
    """
    CREATE OR REPLACE VIEW alerts_current AS
        SELECT DISTINCT ON (dedup_key, starts_at) *
        FROM alerts
        ORDER BY dedup_key, starts_at, event_time DESC, state DESC
    """,
)

#: Tables made REGIONAL BY ROW on a multi-region CockroachDB cluster.
REGIONAL_TABLES = (WINDOW_AGGREGATES.name, ALERTS.name)

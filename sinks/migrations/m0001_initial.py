"""Version 1: window aggregates, alerts, and a view of each alert's latest state."""

from __future__ import annotations

__all__ = ["NAME", "REGIONAL_TABLES", "STATEMENTS"]

NAME = "window aggregates and alerts"

# Timestamps are TIMESTAMPTZ (UTC), labels JSONB for querying plus their
# canonical JSON text as part of the key: JSONB is not indexable as a primary
# key column in CockroachDB, and the text form makes equal label sets equal.
STATEMENTS = (
    """
    CREATE TABLE IF NOT EXISTS window_aggregates (
        host TEXT NOT NULL,
        metric TEXT NOT NULL,
        labels_key TEXT NOT NULL,
        window_size_ms BIGINT NOT NULL,
        window_start TIMESTAMPTZ NOT NULL,
        window_end TIMESTAMPTZ NOT NULL,
        labels JSONB NOT NULL,
        kind TEXT NOT NULL,
        count BIGINT NOT NULL,
        sum DOUBLE PRECISION NOT NULL,
        min DOUBLE PRECISION NOT NULL,
        max DOUBLE PRECISION NOT NULL,
        mean DOUBLE PRECISION NOT NULL,
        last DOUBLE PRECISION NOT NULL,
        p50 DOUBLE PRECISION NOT NULL,
        p90 DOUBLE PRECISION NOT NULL,
        p95 DOUBLE PRECISION NOT NULL,
        p99 DOUBLE PRECISION NOT NULL,
        quantile_relative_error DOUBLE PRECISION NOT NULL,
        rate_per_second DOUBLE PRECISION,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (host, metric, labels_key, window_size_ms, window_start)
    )
    """,
    # The API asks "metric X over window W between start and end" across hosts.
    """
    CREATE INDEX IF NOT EXISTS window_aggregates_by_metric
        ON window_aggregates (metric, window_size_ms, window_start)
    """,
    """
    CREATE TABLE IF NOT EXISTS alerts (
        dedup_key TEXT NOT NULL,
        starts_at TIMESTAMPTZ NOT NULL,
        state TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        host TEXT NOT NULL,
        metric TEXT NOT NULL,
        series_labels JSONB NOT NULL,
        labels JSONB NOT NULL,
        annotations JSONB NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        threshold DOUBLE PRECISION NOT NULL,
        ends_at TIMESTAMPTZ,
        window_end TIMESTAMPTZ NOT NULL,
        event_time TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (dedup_key, starts_at, state)
    )
    """,
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
REGIONAL_TABLES = ("window_aggregates", "alerts")

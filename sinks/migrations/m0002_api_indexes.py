"""Version 2: indexes for the API's read paths."""

from __future__ import annotations

__all__ = ["NAME", "REGIONAL_TABLES", "STATEMENTS"]

NAME = "indexes for the aggregate and alert queries of the API"

STATEMENTS = (
    # GET /api/v1/aggregates?host=&metric=&window=&start=&end= pages through
    # (window_start, labels_key) for one host, metric and window size.
    """
    CREATE INDEX IF NOT EXISTS window_aggregates_by_host_metric_window
        ON window_aggregates (host, metric, window_size_ms, window_start, labels_key)
    """,
    # GET /api/v1/alerts?host= lists a host's alerts, newest first.
    "CREATE INDEX IF NOT EXISTS alerts_by_host ON alerts (host, starts_at)",
)

REGIONAL_TABLES: tuple[str, ...] = ()

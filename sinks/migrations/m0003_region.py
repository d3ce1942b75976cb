"""Version 3: the region each aggregate and alert comes from."""

from __future__ import annotations

from hoststream.sinks.sql_schema import ALERTS, WINDOW_AGGREGATES

__all__ = ["NAME", "REGIONAL_TABLES", "REGION_COLUMN", "STATEMENTS"]

NAME = "region column of window aggregates and alerts"

STATEMENTS = (
    f"ALTER TABLE {WINDOW_AGGREGATES.name} ADD COLUMN IF NOT EXISTS region TEXT",
    f"ALTER TABLE {ALERTS.name} ADD COLUMN IF NOT EXISTS region TEXT",
    # The view was expanded from alerts' columns when it was made; make it again
    # so it has the new column (appended last, as CREATE OR REPLACE VIEW requires).
    """
    CREATE OR REPLACE VIEW alerts_current AS
        SELECT DISTINCT ON (dedup_key, starts_at) *
        FROM alerts
        ORDER BY dedup_key, starts_at, event_time DESC, state DESC
    """,
)

#: On a multi-region CockroachDB cluster each row of these tables is homed in
#: the region it comes from, so a region's own hosts are read and written
#: locally while the mirrored rows of the other regions live in theirs.
REGIONAL_TABLES = (WINDOW_AGGREGATES.name, ALERTS.name)
REGION_COLUMN = "region"

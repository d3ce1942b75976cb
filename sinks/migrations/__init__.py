"""Versioned schema migrations, applied at start and recorded in ``schema_migrations``.

Each migration is a module ``mNNNN_<name>.py`` with ``NAME`` and
``STATEMENTS`` (DDL that PostgreSQL and CockroachDB both accept, each
idempotent), and optionally ``REGIONAL_TABLES``: on a CockroachDB cluster
with regions those become ``REGIONAL BY ROW`` after the database gets its
primary region and every other region of the cluster, and ``REGION_COLUMN``:
then each row is homed in the region its column names (see
:func:`regional_statements`). The tables themselves are defined once, in
:mod:`hoststream.sinks.sql_schema`; the first migration creates them from
there. A change to a table is a new migration whose statements bring existing
databases to the new definition (``ADD COLUMN IF NOT EXISTS``, so they are
no-ops on a database the first one just created); add it as a module and list
it below, and never edit the statements of one that has shipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from hoststream.sinks.migrations import (
    m0001_initial,
    m0002_api_indexes,
    m0003_region,
    m0004_api_key_order,
)

__all__ = ["MIGRATIONS", "Migration", "apply_migrations", "is_cockroach", "regional_statements"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One schema version: its DDL, and the tables that are regional on CockroachDB."""

    version: int
    name: str
    statements: tuple[str, ...]
    regional_tables: tuple[str, ...] = ()
    #: CockroachDB: the column whose value (a hoststream region) homes each row.
    region_column: str | None = None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, m0001_initial.NAME, m0001_initial.STATEMENTS, m0001_initial.REGIONAL_TABLES),
    Migration(
        2, m0002_api_indexes.NAME, m0002_api_indexes.STATEMENTS, m0002_api_indexes.REGIONAL_TABLES
    ),
    Migration(
        3,
        m0003_region.NAME,
        m0003_region.STATEMENTS,
        m0003_region.REGIONAL_TABLES,
        m0003_region.REGION_COLUMN,
    ),
    Migration(
        4,
        m0004_api_key_order.NAME,
        m0004_api_key_order.STATEMENTS,
        m0004_api_key_order.REGIONAL_TABLES,
    ),
)

_CREATE_LEDGER = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version INT PRIMARY KEY,
        name TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
"""


def is_cockroach(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``SELECT version()`` names CockroachDB."""
    row = conn.execute("SELECT version()").fetchone()
    return row is not None and "cockroachdb" in str(row[0]).lower()


#: The hidden column CockroachDB homes a row by, computed from the region column.
HOME_REGION_COLUMN = "crdb_home_region"


def regional_statements(
    database: str,
    region: str,
    tables: tuple[str, ...],
    *,
    regions: tuple[str, ...] = (),
    region_column: str | None = None,
) -> list[sql.Composed]:
    """The multi-region DDL for CockroachDB.

    The database gets its primary region and every other region of the
    cluster; each table becomes ``REGIONAL BY ROW``. With ``region_column``,
    a row is homed in the database region of that name (hoststream's
    ``HOSTSTREAM_REGION`` names the cluster's regions), through a stored
    computed column of type ``crdb_internal_region`` as CockroachDB's docs
    prescribe; a row of no known region (NULL, or a region the cluster lacks)
    lives in the primary region. Without it, CockroachDB homes a row where
    it was written (its implicit ``crdb_region``).

    Args:
        database: the database to make multi-region.
        region: its primary region.
        tables: the tables to make ``REGIONAL BY ROW``.
        regions: the cluster's regions (``SHOW REGIONS FROM CLUSTER``).
        region_column: the column naming each row's region.
    """
    db = sql.Identifier(database)
    statements = [
        sql.SQL("ALTER DATABASE {} SET PRIMARY REGION {}").format(db, sql.Identifier(region))
    ]
    statements += [
        sql.SQL("ALTER DATABASE {} ADD REGION IF NOT EXISTS {}").format(db, sql.Identifier(other))
        for other in regions
        if other != region
    ]
    home = sql.Identifier(HOME_REGION_COLUMN)
    for name in tables:
        table = sql.Identifier(name)
        if region_column is None:
            statements.append(sql.SQL("ALTER TABLE {} SET LOCALITY REGIONAL BY ROW").format(table))
            continue
        cases = sql.SQL(" ").join(
            sql.SQL("WHEN {} THEN {}").format(sql.Literal(r), sql.Literal(r))
            for r in sorted({region, *regions})
        )
        statements += [
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} crdb_internal_region NOT VISIBLE"
                " AS (CASE {} {} ELSE {} END) STORED"
            ).format(table, home, sql.Identifier(region_column), cases, sql.Literal(region)),
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(table, home),
            sql.SQL("ALTER TABLE {} SET LOCALITY REGIONAL BY ROW AS {}").format(table, home),
        ]
    return statements


def _cluster_regions(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("SELECT region FROM [SHOW REGIONS FROM CLUSTER] ORDER BY region")
    return [str(row[0]) for row in rows.fetchall()]


def apply_migrations(
    conn: psycopg.Connection[Any],
    migrations: tuple[Migration, ...] = MIGRATIONS,
    primary_region: str | None = None,
) -> list[int]:
    """Apply the migrations not yet recorded, in order; return the versions applied.

    ``conn`` must be in autocommit mode with its search path set. On
    PostgreSQL each migration runs in one transaction with its ledger row, so
    two sinks starting at once cannot both apply it (the second fails on the
    ledger's key and is retried by its caller). CockroachDB runs schema
    changes best outside explicit transactions, so there every statement
    commits alone and is idempotent.

    Args:
        conn: an autocommit connection.
        migrations: the migrations, oldest first.
        primary_region: CockroachDB only: the database's primary region
            (default: the first of ``SHOW REGIONS FROM CLUSTER``; none: no
            multi-region DDL).
    """
    cockroach = is_cockroach(conn)
    conn.execute(_CREATE_LEDGER)
    applied = {
        int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations").fetchall()
    }
    done: list[int] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        log.info("applying schema migration %d: %s", migration.version, migration.name)
        if cockroach:
            for statement in migration.statements:
                conn.execute(statement)
            _apply_regional(conn, migration, primary_region)
            _record(conn, migration, if_absent=True)
        else:
            with conn.transaction():
                for statement in migration.statements:
                    conn.execute(statement)
                _record(conn, migration, if_absent=False)
        done.append(migration.version)
    return done


def _apply_regional(
    conn: psycopg.Connection[Any], migration: Migration, primary_region: str | None
) -> None:
    if not migration.regional_tables:
        return
    regions = _cluster_regions(conn)
    region = primary_region or (regions[0] if regions else None)
    if region is None:
        log.info("CockroachDB cluster without regions: tables stay as they are")
        return
    row = conn.execute("SELECT current_database()").fetchone()
    database = str(row[0]) if row else ""
    for statement in regional_statements(
        database,
        region,
        migration.regional_tables,
        regions=tuple(regions),
        region_column=migration.region_column,
    ):
        conn.execute(statement)


_RECORD = "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)"
_RECORD_IF_ABSENT = _RECORD + " ON CONFLICT (version) DO NOTHING"


def _record(conn: psycopg.Connection[Any], migration: Migration, if_absent: bool) -> None:
    conn.execute(_RECORD_IF_ABSENT if if_absent else _RECORD, (migration.version, migration.name))

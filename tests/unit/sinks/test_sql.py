"""SQL rows, statements, validation, migrations DDL and error sorting, without a database."""

from __future__ import annotations

import math
import typing

import psycopg.errors
import pytest
from psycopg import sql

from hoststream.errors import InvalidRecordError, SinkFatalError, SinkUnavailableError
from hoststream.schemas import AlertEvent, AlertState, MetricKind, WindowAggregate
from hoststream.schemas.validation import Validator
from hoststream.sinks import sql_rows
from hoststream.sinks.migrations import MIGRATIONS, apply_migrations, regional_statements
from hoststream.sinks.sql import (
    SqlSink,
    _ContentError,
    clear_statement,
    copy_statement,
    staging_statements,
    upsert_statement,
)
from hoststream.sinks.sql_rows import (
    AGGREGATE_COLUMNS,
    AGGREGATE_STAGING,
    ALERT_COLUMNS,
    ALERT_STAGING,
    aggregate_row,
    alert_row,
    canonical_labels,
    latest_per_key,
    validate,
)

NOW_MS = 1_800_000_000_000


def aggregate(**overrides) -> WindowAggregate:
    fields = {
        "host": "h1",
        "metric": "node_load1",
        "kind": MetricKind.GAUGE,
        "window_size_ms": 60_000,
        "window_start": NOW_MS - 120_000,
        "window_end": NOW_MS - 60_000,
        "count": 6,
        "sum": 6.0,
        "min": 0.5,
        "max": 1.5,
        "mean": 1.0,
        "last": 1.0,
        "p50": 1.0,
        "p90": 1.4,
        "p95": 1.45,
        "p99": 1.5,
        "quantile_relative_error": 0.01,
        "labels": {"mode": "idle", "cpu": "0"},
    }
    fields.update(overrides)
    return WindowAggregate(**fields)


def alert(**overrides) -> AlertEvent:
    fields = {
        "dedup_key": "k1",
        "rule": "HighLoad",
        "state": AlertState.FIRING,
        "severity": "warning",
        "host": "h1",
        "metric": "node_load1",
        "value": 2.0,
        "threshold": 1.0,
        "starts_at": NOW_MS - 300_000,
        "window_end": NOW_MS - 60_000,
        "event_time": NOW_MS - 60_000,
    }
    fields.update(overrides)
    return AlertEvent(**fields)


def test_labels_are_canonical_json_whatever_their_order() -> None:
    assert canonical_labels({"mode": "idle", "cpu": "0"}) == '{"cpu":"0","mode":"idle"}'
    assert canonical_labels({"cpu": "0", "mode": "idle"}) == canonical_labels(
        {"mode": "idle", "cpu": "0"}
    )
    assert canonical_labels({}) == "{}"


def test_remembered_label_texts_stay_exact_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_rows, "_CANONICAL", {})
    monkeypatch.setattr(sql_rows, "_CANONICAL_MAX", 3)
    for cpu in range(10):
        for _ in range(2):  # the second call is answered from memory
            assert canonical_labels({"mode": "idle", "cpu": str(cpu)}) == (
                f'{{"cpu":"{cpu}","mode":"idle"}}'
            )
        assert len(sql_rows._CANONICAL) <= 3


def test_rows_match_their_staged_columns() -> None:
    staged = [c for c in AGGREGATE_COLUMNS if AGGREGATE_STAGING[c][0] is not None]
    assert "labels" not in staged  # computed from labels_key by the database
    named = dict(zip(staged, aggregate_row(aggregate(rate_per_second=None)), strict=True))
    assert named["labels_key"] == '{"cpu":"0","mode":"idle"}'
    assert named["window_start"] == NOW_MS - 120_000
    assert named["kind"] == "GAUGE"
    assert named["rate_per_second"] is None
    assert [c for c in ALERT_COLUMNS if ALERT_STAGING[c][0] is not None] == list(ALERT_COLUMNS)
    arow = dict(zip(ALERT_COLUMNS, alert_row(alert(labels={"b": "2", "a": "1"})), strict=True))
    assert arow["state"] == "FIRING"
    assert arow["ends_at"] is None
    assert arow["event_time"] == NOW_MS - 60_000
    assert arow["labels"] == '{"a":"1","b":"2"}'


def test_the_latest_record_per_key_wins() -> None:
    first, later = aggregate(mean=1.0), aggregate(mean=2.0, labels={"cpu": "0", "mode": "idle"})
    other = aggregate(host="h2")
    newer = alert(event_time=NOW_MS - 30_000, value=3.0)
    older = alert(event_time=NOW_MS - 90_000, value=1.5)
    aggregates, alerts = latest_per_key([first, other, later, newer, older])
    assert aggregates == [later, other]
    assert alerts == [newer]


def test_upserts_update_on_conflict_and_alerts_never_go_back_in_time() -> None:
    text = upsert_statement("alerts").as_string(None)
    assert text.startswith('INSERT INTO "alerts" ("dedup_key", "starts_at", "state", ')
    assert ' FROM "staged_alerts" ON CONFLICT' in text
    assert "%s" not in text
    assert 'to_timestamp(CAST("starts_at" AS DOUBLE PRECISION) / 1000)' in text
    assert 'CAST("annotations" AS JSONB)' in text
    assert (
        'ON CONFLICT ("dedup_key", "starts_at", "state") DO UPDATE SET "rule" = excluded."rule"'
        in text
    )
    assert text.endswith("updated_at = now() WHERE alerts.event_time <= excluded.event_time")
    agg = upsert_statement("window_aggregates", 2).as_string(None)
    assert 'ON CONFLICT ("host", "metric", "labels_key", "window_size_ms", "window_start")' in agg
    assert agg.count("CAST(%s AS ") == 2 * (len(AGGREGATE_COLUMNS) - 1)
    assert 'CAST("labels_key" AS JSONB)' in agg
    assert '"mean" = excluded."mean"' in agg
    assert '"host" = excluded' not in agg
    assert "WHERE" not in agg
    with pytest.raises(ValueError, match="no upsert"):
        upsert_statement("users; DROP TABLE x", 1)


def test_batches_are_copied_into_a_staging_table_emptied_per_transaction() -> None:
    (postgres,) = staging_statements("alerts", cockroach=False)
    text = postgres.as_string(None)
    assert text.startswith('CREATE TEMP TABLE IF NOT EXISTS "staged_alerts" ("dedup_key" TEXT, ')
    assert '"starts_at" BIGINT' in text
    assert text.endswith(" ON COMMIT DELETE ROWS")
    # CockroachDB: temporary tables behind a setting, no ON COMMIT; emptied by DELETE.
    setting, create = staging_statements("window_aggregates", cockroach=True)
    assert setting.as_string(None) == "SET experimental_enable_temp_tables = 'on'"
    assert "ON COMMIT" not in create.as_string(None)
    assert '"labels"' not in create.as_string(None)
    assert clear_statement("alerts").as_string(None) == 'DELETE FROM "staged_alerts"'
    copy = copy_statement("window_aggregates").as_string(None)
    assert copy.startswith('COPY "staged_window_aggregates" ("host", "metric", "labels_key", ')
    assert copy.endswith(' "quantile_relative_error", "region") FROM STDIN')


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (aggregate(window_start=0, window_end=60_000), "outside"),
        (aggregate(window_start=NOW_MS + 86_400_000, window_end=NOW_MS + 86_460_000), "outside"),
        (alert(starts_at=5), "starts_at"),
        (alert(ends_at=NOW_MS + 86_400_000), "ends_at"),
    ],
)
def test_instants_no_row_should_hold_are_invalid(record, problem: str) -> None:
    with pytest.raises(InvalidRecordError, match=problem):
        validate(record, NOW_MS, 600_000)


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        (aggregate(p99=math.nan), "NonFiniteValue"),
        (aggregate(mean=math.inf), "NonFiniteValue"),
        (aggregate(rate_per_second=-math.inf), "NonFiniteValue"),
        (aggregate(count=0), "InvalidWindow"),
        (aggregate(window_end=NOW_MS), "InvalidWindow"),
        (aggregate(labels={"cpu": "0\x00"}), "InvalidLabelValue"),
        (aggregate(host=""), "InvalidHostId"),
        (alert(value=math.nan), "NonFiniteValue"),
        (alert(annotations={"summary": "a\x00b"}), "InvalidLabelValue"),
        (alert(dedup_key=""), "InvalidAlert"),
    ],
)
def test_what_the_database_would_refuse_besides_is_the_validation_contracts(
    record, rule: str
) -> None:
    # The sink's consumer applies the contract before the sink's own check.
    found = Validator(clock_ms=lambda: NOW_MS).check(record)
    assert found is not None
    assert found.error == rule


def test_valid_records_pass() -> None:
    validate(aggregate(), NOW_MS, 600_000)
    validate(alert(state=AlertState.RESOLVED, ends_at=NOW_MS - 60_000), NOW_MS, 600_000)


def test_multi_region_ddl_for_cockroachdb() -> None:
    statements = [
        s.as_string(None) for s in regional_statements("hoststream", "eu-west-1", ("alerts",))
    ]
    assert statements == [
        'ALTER DATABASE "hoststream" SET PRIMARY REGION "eu-west-1"',
        'ALTER TABLE "alerts" SET LOCALITY REGIONAL BY ROW',
    ]


def test_cockroachdb_rows_are_homed_in_the_region_they_come_from() -> None:
    statements = [
        s.as_string(None)
        for s in regional_statements(
            "hoststream",
            "region-a",
            ("alerts",),
            regions=("region-a", "region-b"),
            region_column="region",
        )
    ]
    assert statements == [
        'ALTER DATABASE "hoststream" SET PRIMARY REGION "region-a"',
        'ALTER DATABASE "hoststream" ADD REGION IF NOT EXISTS "region-b"',
        'ALTER TABLE "alerts" ADD COLUMN IF NOT EXISTS "crdb_home_region" crdb_internal_region'
        " NOT VISIBLE AS (CASE \"region\" WHEN 'region-a' THEN 'region-a'"
        " WHEN 'region-b' THEN 'region-b' ELSE 'region-a' END) STORED",
        'ALTER TABLE "alerts" ALTER COLUMN "crdb_home_region" SET NOT NULL',
        'ALTER TABLE "alerts" SET LOCALITY REGIONAL BY ROW AS "crdb_home_region"',
    ]


class _CockroachDouble:
    """A connection double (unit test only) answering as a two-region CockroachDB cluster."""

    ANSWERS: typing.ClassVar[dict[str, list[tuple[object, ...]]]] = {
        "SELECT version()": [("CockroachDB CCL v25.2.0 (x86_64-pc-linux-gnu)",)],
        "SELECT version FROM schema_migrations": [],
        "SELECT region FROM [SHOW REGIONS FROM CLUSTER] ORDER BY region": [
            ("region-a",),
            ("region-b",),
        ],
        "SELECT current_database()": [("hoststream",)],
    }

    def __init__(self) -> None:
        self.executed: list[str] = []

    def execute(self, query: object, params: object = None) -> _CockroachDouble:
        text = query.as_string(None) if isinstance(query, sql.Composable) else str(query)
        self.executed.append(" ".join(text.split()))
        self._rows = self.ANSWERS.get(self.executed[-1], [])
        return self

    def fetchone(self) -> tuple[object, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[object, ...]]:
        return self._rows


def test_on_cockroachdb_the_postgresql_statements_run_then_the_multi_region_ddl() -> None:
    conn = _CockroachDouble()
    assert apply_migrations(conn, MIGRATIONS) == [m.version for m in MIGRATIONS]  # type: ignore[arg-type]
    executed = conn.executed
    # Every statement of the PostgreSQL path, in order...
    postgres = [" ".join(str(s).split()) for m in MIGRATIONS for s in m.statements]
    assert [s for s in executed if s in postgres] == postgres
    # ...then, once the region column exists, every row homed by it, in both regions.
    m3 = executed.index("ALTER TABLE window_aggregates ADD COLUMN IF NOT EXISTS region TEXT")
    after = executed[m3:]
    assert 'ALTER DATABASE "hoststream" ADD REGION IF NOT EXISTS "region-b"' in after
    for table in ("window_aggregates", "alerts"):
        assert f'ALTER TABLE "{table}" SET LOCALITY REGIONAL BY ROW AS "crdb_home_region"' in after
    # Each migration is recorded once it is applied.
    recorded = [s for s in executed if s.startswith("INSERT INTO schema_migrations")]
    assert len(recorded) == len(MIGRATIONS)


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[0].regional_tables == ("window_aggregates", "alerts")


def test_the_aggregate_key_is_stored_in_the_apis_order_and_no_index_repeats_it() -> None:
    from hoststream.sinks.migrations import m0004_api_key_order

    # The same columns as the sink's ON CONFLICT target: only their order changes.
    assert sorted(m0004_api_key_order.API_KEY_ORDER) == sorted(sql_rows.AGGREGATE_KEY)
    # The API's pages: one host, metric and window size, in (window start, labels) order.
    assert m0004_api_key_order.API_KEY_ORDER == (
        "host",
        "metric",
        "window_size_ms",
        "window_start",
        "labels_key",
    )
    rekey, *drops = m0004_api_key_order.STATEMENTS
    assert rekey == (
        "ALTER TABLE window_aggregates DROP CONSTRAINT window_aggregates_pkey,"
        " ADD CONSTRAINT window_aggregates_pkey"
        " PRIMARY KEY (host, metric, window_size_ms, window_start, labels_key)"
    )
    assert drops == [
        "DROP INDEX IF EXISTS window_aggregates_by_host_metric_window",
        "DROP INDEX IF EXISTS window_aggregates_by_metric",
    ]
    assert MIGRATIONS[3].statements == m0004_api_key_order.STATEMENTS


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("22003", _ContentError),  # numeric value out of range
        ("23502", _ContentError),  # not-null violation
        ("42P01", SinkFatalError),  # undefined table
        ("28P01", SinkFatalError),  # bad password
        ("3D000", SinkFatalError),  # no such database
        ("57P01", SinkUnavailableError),  # admin shutdown
        ("08006", SinkUnavailableError),  # connection failure
        ("53300", SinkUnavailableError),  # too many connections
        ("57014", SinkUnavailableError),  # statement timeout
        ("40P01", SinkUnavailableError),  # deadlock
        ("54000", _ContentError),  # program limit exceeded: index row too big
        ("22021", _ContentError),  # character not in repertoire
        ("0A000", _ContentError),  # feature not supported: retrying cannot help either
        ("XX000", _ContentError),
    ],
)
def test_database_errors_are_sorted_by_what_to_do(sqlstate: str, expected: type) -> None:
    sink = SqlSink("postgresql://unused")
    assert isinstance(sink._classify(psycopg.Error("x"), sqlstate), expected)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.OperationalError("could not connect"), SinkUnavailableError),
        (psycopg.errors.ConnectionTimeout("timed out"), SinkUnavailableError),
        (psycopg.InterfaceError("the connection is closed"), SinkUnavailableError),
        # Raised by the client before sending: a NUL character in text.
        (
            psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
            _ContentError,
        ),
    ],
)
def test_client_side_errors_without_sqlstate_are_sorted_too(
    error: psycopg.Error, expected: type
) -> None:
    assert isinstance(SqlSink("postgresql://unused")._classify(error, ""), expected)


class _Flaky:
    """Raises SQLSTATE 40001 the first ``failures`` times (an in-memory double of a conflict)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, conn) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise psycopg.errors.lookup("40001")("restart transaction")


def test_serialization_failures_are_retried_at_once_then_handed_back(monkeypatch) -> None:
    sink = SqlSink("postgresql://unused", serialization_retries=3)
    monkeypatch.setattr(sink, "_connection", lambda: (object(), None))
    monkeypatch.setattr("hoststream.sinks.sql.time.sleep", lambda s: None)
    work = _Flaky(2)
    sink._run(work)
    assert work.calls == 3
    with pytest.raises(SinkUnavailableError, match="40001"):
        sink._run(_Flaky(10))

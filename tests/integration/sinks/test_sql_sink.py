"""The SQL sink against the stack's real PostgreSQL (standing in for CockroachDB), and Kafka."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext
from psycopg import sql

from hoststream.config import Settings
from hoststream.kafka import producer_config
from hoststream.schemas import AlertEvent, AlertState, MetricKind, WindowAggregate, codec_for
from hoststream.sinks.base import SinkRecord
from hoststream.sinks.migrations import MIGRATIONS
from hoststream.sinks.sql import SqlSink
from hoststream.stack import Stack
from tests.support.kafka import drain
from tests.support.paths import STATE_DIR
from tests.support.services import PORT_OFFSET
from tests.support.sinks import ThreadedSink, group_settings, small_policy, wait_committed, wait_for

NOW_MS = int(time.time()) // 60 * 60_000


def aggregate(host: str, minute: int, mean: float = 10.0, **overrides) -> WindowAggregate:
    start = NOW_MS - (minute + 1) * 60_000
    fields = {
        "host": host,
        "metric": "node_load1",
        "kind": MetricKind.GAUGE,
        "window_size_ms": 60_000,
        "window_start": start,
        "window_end": start + 60_000,
        "count": 6,
        "sum": mean * 6,
        "min": mean - 1,
        "max": mean + 1,
        "mean": mean,
        "last": mean,
        "p50": mean,
        "p90": mean,
        "p95": mean,
        "p99": mean + 1,
        "quantile_relative_error": 0.01,
        "labels": {"cpu": "0", "mode": "idle"},
    }
    fields.update(overrides)
    return WindowAggregate(**fields)


def alert(key: str, state: AlertState, event_time: int, value: float = 0.95) -> AlertEvent:
    return AlertEvent(
        dedup_key=key,
        rule="HighLoad",
        state=state,
        severity="warning",
        host="h1",
        metric="node_load1",
        value=value,
        threshold=0.9,
        starts_at=NOW_MS - 300_000,
        ends_at=None if state is AlertState.FIRING else event_time,
        window_end=event_time,
        event_time=event_time,
        series_labels={"cpu": "0"},
        labels={"team": "infra"},
        annotations={"summary": "load is high"},
    )


def rec(value, offset: int = 0) -> SinkRecord:
    return SinkRecord("t", 0, offset, b"k", b"raw", value)


@pytest.fixture
def schema(services: Settings, unique: str) -> Iterator[str]:
    """A schema of this test's own, dropped afterwards."""
    yield unique
    with psycopg.connect(
        services.sql_dsn.get_secret_value(), autocommit=True, connect_timeout=10
    ) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(unique)))


@contextmanager
def in_schema(
    settings: Settings, schema: str, *, create: bool = False, autocommit: bool = False
) -> Iterator[psycopg.Connection]:
    """A connection whose search path is ``schema`` (created first if asked)."""
    with psycopg.connect(
        settings.sql_dsn.get_secret_value(), autocommit=autocommit, connect_timeout=10
    ) as conn:
        if create:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        yield conn


def rows(settings: Settings, schema: str, query: str, params: tuple = ()) -> list[tuple]:
    with in_schema(settings, schema) as conn:
        return conn.execute(query, params).fetchall()


def test_migrations_are_applied_once_and_recorded(services: Settings, schema: str) -> None:
    first = SqlSink(services.sql_dsn.get_secret_value(), schema=schema)
    second = SqlSink(services.sql_dsn.get_secret_value(), schema=schema)
    try:
        assert first.migrate() == [m.version for m in MIGRATIONS]
        assert second.migrate() == []
    finally:
        first.close()
        second.close()
    recorded = rows(services, schema, "SELECT version FROM schema_migrations ORDER BY version")
    assert recorded == [(m.version,) for m in MIGRATIONS]
    tables = rows(
        services,
        schema,
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = %s ORDER BY table_name",
        (schema,),
    )
    assert [t for (t,) in tables] == [
        "alerts",
        "alerts_current",
        "schema_migrations",
        "window_aggregates",
    ]


def test_writing_the_same_batch_twice_leaves_the_same_rows(services: Settings, schema: str) -> None:
    batch = [
        rec(aggregate("h1", 1)),
        rec(aggregate("h1", 2)),
        rec(aggregate("h2", 1, labels={"mode": "idle", "cpu": "0"})),
        rec(aggregate("h1", 1, mean=20.0)),  # the same window again, later: it wins
        rec(alert("k1", AlertState.FIRING, NOW_MS - 240_000)),
        rec(alert("k1", AlertState.RESOLVED, NOW_MS - 60_000, value=0.5)),
        rec(alert("k1", AlertState.FIRING, NOW_MS - 180_000, value=0.97)),  # a newer FIRING update
    ]
    sink = SqlSink(services.sql_dsn.get_secret_value(), schema=schema)
    try:
        assert sink.write(batch) == []
        agg_query = (
            "SELECT host, metric, labels_key, window_size_ms, window_start, window_end, labels,"
            " kind, count, mean, rate_per_second FROM window_aggregates ORDER BY 1, 5"
        )
        alert_query = (
            "SELECT dedup_key, starts_at, state, value, ends_at, event_time, labels"
            " FROM alerts ORDER BY 3"
        )
        first_aggs = rows(services, schema, agg_query)
        first_alerts = rows(services, schema, alert_query)
        assert sink.write(batch) == []
        # An older event arriving late must not overwrite a newer one.
        assert sink.write([rec(alert("k1", AlertState.FIRING, NOW_MS - 240_000, value=0.1))]) == []
    finally:
        sink.close()
    assert rows(services, schema, agg_query) == first_aggs
    assert rows(services, schema, alert_query) == first_alerts
    assert len(first_aggs) == 3
    h1_latest = [
        r for r in first_aggs if r[0] == "h1" and r[4].timestamp() * 1000 == NOW_MS - 120_000
    ]
    assert h1_latest[0][9] == 20.0
    assert {r[2] for r in first_aggs} == {'{"cpu":"0","mode":"idle"}'}
    assert [(r[2], r[3]) for r in first_alerts] == [("FIRING", 0.97), ("RESOLVED", 0.5)]
    current = rows(services, schema, "SELECT state FROM alerts_current")
    assert current == [("RESOLVED",)]


def test_timestamps_and_labels_are_stored_exactly(services: Settings, schema: str) -> None:
    """Staged as milliseconds and JSON text, they come out as the same instants and label sets."""
    odd_ms = NOW_MS - 59_999  # no whole second: a float conversion would show
    event = alert("k2", AlertState.RESOLVED, odd_ms)
    sink = SqlSink(services.sql_dsn.get_secret_value(), schema=schema)
    try:
        assert (
            sink.write([rec(aggregate("h1", 1, labels={"b": "é", "a": '"q"'})), rec(event)]) == []
        )
    finally:
        sink.close()
    [(start, end, labels, key)] = rows(
        services,
        schema,
        "SELECT window_start, window_end, labels, labels_key FROM window_aggregates",
    )
    assert int(start.timestamp() * 1000) == NOW_MS - 120_000
    assert int(end.timestamp() * 1000) == NOW_MS - 60_000
    assert labels == {"a": '"q"', "b": "é"}
    assert key == '{"a":"\\"q\\"","b":"é"}'
    [(ends_at, event_time, series_labels)] = rows(
        services, schema, "SELECT ends_at, event_time, series_labels FROM alerts"
    )
    assert round(ends_at.timestamp() * 1000) == odd_ms
    assert ends_at == event_time
    assert ends_at.microsecond % 1000 == 0
    assert series_labels == {"cpu": "0"}


def test_records_the_database_refuses_are_found_and_rejected_alone(
    services: Settings, schema: str
) -> None:
    # 2^63 overflows BIGINT (SQLSTATE 22003); check() does not look at count's size.
    bad = aggregate("h8", 3, count=2**63)
    batch = [rec(aggregate("h1", m), m) for m in range(6)]
    batch.insert(3, rec(bad, 99))
    sink = SqlSink(services.sql_dsn.get_secret_value(), schema=schema)
    try:
        rejected = sink.write(batch)
    finally:
        sink.close()
    assert [r.record.offset for r in rejected] == [99]
    assert "22003" in rejected[0].reason
    assert rows(services, schema, "SELECT count(*) FROM window_aggregates") == [(6,)]


def produce_values(
    settings: Settings, topic: str, values: list, serializers: dict | None = None
) -> None:
    """Produce ``values``; pass the same ``serializers`` dict to reuse their cached schema ids."""
    serializers = {} if serializers is None else serializers
    producer = Producer(producer_config(settings))
    ctx = SerializationContext(topic, MessageField.VALUE)
    for value in values:
        if isinstance(value, bytes):
            producer.produce(topic, key=b"poison", value=value)
            continue
        if type(value) not in serializers:
            serializers[type(value)] = codec_for(settings, type(value)).serializer
        key = value.dedup_key if isinstance(value, AlertEvent) else value.host
        producer.produce(topic, key=key.encode(), value=serializers[type(value)](value, ctx))
    assert producer.flush(30) == 0


def heal_registry(settings: Settings, timeout_s: float = 60) -> None:
    """Wait until the schema registry answers again after its database came back.

    Its connection pool hands out each connection PostgreSQL terminated once,
    failing that request; asking until it answers flushes them, so tests that
    run after this one find a working registry.
    """

    def answers() -> bool:
        try:
            url = f"{settings.schema_registry_url}/subjects"
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    if settings.schema_registry_url:
        wait_for(answers, timeout_s, "the schema registry to answer", every_s=0.2)


def test_aggregates_and_alerts_flow_from_kafka_and_poison_is_dead_lettered(
    services: Settings, make_topic, unique: str, schema: str
) -> None:
    settings = group_settings(services, unique)
    agg_topic = make_topic("metrics.agg.1m", partitions=2)
    alert_topic = make_topic("alerts")
    good = [aggregate(f"h{h}", m) for h in range(5) for m in range(8)]
    poison = [
        aggregate("h9", 1, p99=math.nan),
        aggregate("h9", 2, labels={"cpu": "0\x00"}),
        aggregate("h9", 3, window_start=0, window_end=60_000),
        b"\x00\x00\x00\x00\x07not avro",
    ]
    produce_values(settings, agg_topic, good[:20] + poison + good[20:])
    produce_values(
        settings,
        alert_topic,
        [
            alert("k1", AlertState.FIRING, NOW_MS - 240_000),
            alert("k1", AlertState.RESOLVED, NOW_MS - 60_000),
        ],
    )
    sink = ThreadedSink.start(
        "sql", settings, unique, [agg_topic, alert_topic], policy=small_policy(9), sql_schema=schema
    )
    try:
        wait_committed(settings, unique, agg_topic)
        wait_committed(settings, unique, alert_topic)
    finally:
        sink.close()
    assert rows(services, schema, "SELECT count(*) FROM window_aggregates") == [(len(good),)]
    assert rows(services, schema, "SELECT count(*) FROM alerts") == [(2,)]
    dead = drain(settings, [f"{agg_topic}.dlq"], expected=len(poison), timeout_s=30)
    assert len(dead) == len(poison)
    assert sink.metric("hoststream_sink_records_written_total", sink="sql") == len(good) + 2


def test_a_database_outage_pauses_the_sink_which_then_resumes_and_loses_nothing(
    services: Settings, make_topic, unique: str, schema: str
) -> None:
    """PostgreSQL stops for ~20 s: nothing is committed meanwhile, everything is stored after."""
    [postgres] = [
        s for s in Stack(STATE_DIR, port_offset=PORT_OFFSET).services() if s.name == "postgres"
    ]
    settings = group_settings(services, unique)
    topic = make_topic("metrics.agg.1m", partitions=2)
    before = [aggregate(f"h{h}", m) for h in range(3) for m in range(5)]
    during = [aggregate(f"h{h}", m) for h in range(3) for m in range(5, 15)]
    serializers: dict = {}
    # Registers the schema while the registry's database is up, and caches its id.
    produce_values(settings, topic, before, serializers)

    sink = ThreadedSink.start(
        "sql", settings, unique, [topic], policy=small_policy(10), sql_schema=schema
    )
    try:
        wait_committed(settings, unique, topic)
        postgres.stop()
        try:
            produce_values(settings, topic, during, serializers)
            wait_for(lambda: sink.loop.paused, 30, "the sink to pause")
            time.sleep(20)
            assert sink.loop.paused
            assert sink.metric("hoststream_sink_write_retries_total", sink="sql") >= 2
            assert sink.metric("hoststream_sink_paused", sink="sql") == 1
        finally:
            postgres.start()
            heal_registry(settings)
        wait_committed(settings, unique, topic, timeout_s=120)
        assert not sink.loop.paused
    finally:
        sink.close()
    assert rows(services, schema, "SELECT count(*) FROM window_aggregates") == [
        (len(before) + len(during),)
    ]


def test_regions_are_stored_and_a_mirrored_record_updates_the_same_row(
    services: Settings, schema: str
) -> None:
    # A record mirrored from another region is the same record: same key, one row.
    own = aggregate("a-host", 1, region="region-a")
    firing = dataclasses.replace(alert("k1", AlertState.FIRING, NOW_MS - 60_000), region="region-a")
    sink = SqlSink(services.sql_dsn.get_secret_value(), schema=schema)
    try:
        assert sink.write([rec(own), rec(firing), rec(aggregate("old-host", 1))]) == []
        assert sink.write([rec(own, offset=1), rec(firing, offset=1)]) == []
    finally:
        sink.close()
    assert rows(services, schema, "SELECT host, region FROM window_aggregates ORDER BY 1") == [
        ("a-host", "region-a"),
        ("old-host", None),
    ]
    assert rows(services, schema, "SELECT region FROM alerts") == [("region-a",)]
    assert rows(services, schema, "SELECT region FROM alerts_current") == [("region-a",)]


def test_migration_3_adds_the_region_column_to_a_database_of_version_2(
    services: Settings, schema: str
) -> None:
    from hoststream.sinks.migrations import apply_migrations

    with in_schema(services, schema, create=True, autocommit=True) as conn:
        # Versions 1 and 2 as they shipped: migration 1 creates the tables as
        # sql_schema defines them today, so take the region column back out.
        assert apply_migrations(conn, MIGRATIONS[:2]) == [1, 2]
        conn.execute("DROP VIEW alerts_current")
        conn.execute("ALTER TABLE window_aggregates DROP COLUMN region")
        conn.execute("ALTER TABLE alerts DROP COLUMN region")
        conn.execute(MIGRATIONS[0].statements[-1])  # the view, over the old columns
        m3 = next(m for m in MIGRATIONS if m.version == 3)
        assert apply_migrations(conn, (m3,)) == [3]
    columns = rows(
        services,
        schema,
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = %s AND column_name = 'region' ORDER BY 1",
        (schema,),
    )
    assert columns == [
        ("alerts", "region"),
        ("alerts_current", "region"),
        ("window_aggregates", "region"),
    ]


def test_migration_4_leaves_one_index_that_serves_the_apis_pages(
    services: Settings, schema: str
) -> None:
    from hoststream.sinks.migrations import apply_migrations

    with in_schema(services, schema, create=True, autocommit=True) as conn:
        assert apply_migrations(conn, MIGRATIONS[:3]) == [1, 2, 3]
    sink = SqlSink(services.sql_dsn.get_secret_value(), schema=schema)
    try:
        assert sink.migrate() == [4]
        batch = [rec(aggregate(host, minute)) for host in ("h1", "h2") for minute in range(3)]
        assert sink.write(batch) == []
        assert sink.write(batch) == []  # the key still makes the upsert idempotent
    finally:
        sink.close()
    assert rows(services, schema, "SELECT count(*) FROM window_aggregates") == [(6,)]
    indexes = rows(
        services,
        schema,
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s"
        " AND tablename = 'window_aggregates'",
        (schema,),
    )
    assert [name for name, _ in indexes] == ["window_aggregates_pkey"]
    assert indexes[0][1].endswith("(host, metric, window_size_ms, window_start, labels_key)")
    # The API's page (one host, metric and window size, by window start and
    # labels) is read from the key in order: no sort.
    with in_schema(services, schema) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            line
            for (line,) in conn.execute(
                "EXPLAIN SELECT * FROM window_aggregates WHERE host = 'h1'"
                " AND metric = 'node_load1' AND window_size_ms = 60000"
                " ORDER BY window_start, labels_key LIMIT 10"
            ).fetchall()
        )
    assert "window_aggregates_pkey" in plan
    assert "Sort" not in plan

"""Aggregates and alerts that went through Kafka and the SQL sink, read through the API."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client import CollectorRegistry

from hoststream.kafka import TopicSpec, ensure_topics, producer_config
from hoststream.schemas import AlertEvent, AlertState, MetricKind, WindowAggregate, codec_for
from hoststream.sinks import build_sink


def aggregate(host: str, start_ms: int, cpu: str, value: float) -> WindowAggregate:
    return WindowAggregate(
        host=host,
        metric="node_cpu_utilisation",
        kind=MetricKind.GAUGE,
        window_size_ms=60_000,
        window_start=start_ms,
        window_end=start_ms + 60_000,
        count=6,
        sum=6 * value,
        min=value / 2,
        max=value * 1.5,
        mean=value,
        last=value,
        p50=value,
        p90=value * 1.4,
        p95=value * 1.45,
        p99=value * 1.5,
        quantile_relative_error=0.01,
        labels={"cpu": cpu},
    )


def alert(host: str, state: AlertState, starts_at: int, event_time: int) -> AlertEvent:
    return AlertEvent(
        dedup_key=f"HostHighCpu|{host}",
        rule="HostHighCpu",
        state=state,
        severity="critical",
        host=host,
        metric="node_cpu_utilisation",
        value=0.97,
        threshold=0.9,
        starts_at=starts_at,
        window_end=event_time,
        event_time=event_time,
        ends_at=event_time if state is AlertState.RESOLVED else None,
        labels={"team": "infra"},
        annotations={"summary": "CPU above 90%"},
    )


def produce(settings, topic: str, records, record_type) -> None:
    encode = codec_for(settings, record_type).serializer
    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer(producer_config(settings))
    for record in records:
        key = getattr(record, "dedup_key", None) or record.host
        producer.produce(topic, key=key.encode(), value=encode(record, context))
    assert producer.flush(10) == 0


def run_sql_sink_until(settings, group: str, done) -> None:
    stop = threading.Event()
    consumer = build_sink("sql", settings, registry=CollectorRegistry(), group_id=group)
    worker = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    try:
        while not done():
            assert time.monotonic() < deadline, "the SQL sink did not store the records in 60 s"
            time.sleep(0.5)
    finally:
        stop.set()
        worker.join(30)


def test_aggregates_and_alerts_after_the_sql_sink(api_server, services) -> None:
    settings = api_server.settings
    host = f"api-{uuid.uuid4().hex[:8]}"
    agg_topic, alert_topic = settings.topic("metrics.agg.1m"), settings.topic("alerts")
    ensure_topics(settings, [TopicSpec(agg_topic, 2, 1), TopicSpec(alert_topic, 2, 1)])
    base = (int(time.time()) // 60 - 30) * 60_000
    aggregates = [
        aggregate(host, base + i * 60_000, cpu, 0.1 * (i + 1))
        for i in range(5)
        for cpu in ("0", "1")
    ]
    produce(settings, agg_topic, aggregates, WindowAggregate)
    produce(
        settings,
        alert_topic,
        [
            alert(host, AlertState.FIRING, base, base + 60_000),
            alert(host, AlertState.RESOLVED, base, base + 180_000),
            alert(f"{host}-b", AlertState.FIRING, base + 60_000, base + 120_000),
        ],
        AlertEvent,
    )

    def stored() -> bool:
        with psycopg.connect(services.sql_dsn.get_secret_value()) as conn:
            if conn.execute("SELECT to_regclass('window_aggregates')").fetchone() == (None,):
                return False  # the sink has not applied its migrations yet
            aggs = conn.execute(
                "SELECT count(*) FROM window_aggregates WHERE host = %s", (host,)
            ).fetchone()
            alerts = conn.execute(
                "SELECT count(*) FROM alerts WHERE host LIKE %s", (f"{host}%",)
            ).fetchone()
        return aggs == (10,) and alerts == (3,)

    run_sql_sink_until(settings, f"{host}-sql", stored)

    params = {
        "host": host,
        "metric": "node_cpu_utilisation",
        "window": "1m",
        "start": base,
        "end": base + 3_600_000,
    }
    first = api_server.get("/api/v1/aggregates", params={**params, "limit": 4})
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 4
    assert page["next_cursor"]
    items = page["items"]
    while page["next_cursor"]:
        page = api_server.get(
            "/api/v1/aggregates", params={**params, "limit": 4, "cursor": page["next_cursor"]}
        ).json()
        items += page["items"]
    assert [(i["window_start"], i["labels"]["cpu"]) for i in items] == [
        (a.window_start, a.labels["cpu"])
        for a in sorted(aggregates, key=lambda a: (a.window_start, a.labels["cpu"]))
    ]
    by_key = {(a.window_start, a.labels["cpu"]): a for a in aggregates}
    for item in items:
        expected = by_key[(item["window_start"], item["labels"]["cpu"])]
        assert item["p99"] == expected.p99
        assert item["count"] == 6
        assert item["window_end"] == expected.window_end

    resolved = api_server.get("/api/v1/alerts", params={"state": "resolved", "host": host}).json()
    assert [(a["dedup_key"], a["state"], a["ends_at"]) for a in resolved["items"]] == [
        (f"HostHighCpu|{host}", "resolved", base + 180_000)
    ]
    firing = api_server.get(
        "/api/v1/alerts", params={"state": "firing", "host": f"{host}-b"}
    ).json()
    assert [a["host"] for a in firing["items"]] == [f"{host}-b"]
    assert (
        api_server.get("/api/v1/alerts", params={"state": "firing", "host": host}).json()["items"]
        == []
    )
    # read:metrics alone may not read alerts.
    assert (
        api_server.get("/api/v1/alerts", token=api_server.token(["read:metrics"])).status_code
        == 403
    )


def test_aggregate_queries_are_bounded(api_server) -> None:
    base = {"host": "h", "metric": "node_load1"}
    assert api_server.get("/api/v1/aggregates", params={**base, "limit": 5000}).status_code == 422
    assert (
        api_server.get(
            "/api/v1/aggregates", params={**base, "start": 0, "end": 40 * 86_400_000}
        ).status_code
        == 422
    )
    assert api_server.get("/api/v1/aggregates", params={**base, "window": "7x"}).status_code == 422
    assert api_server.get("/api/v1/aggregates", params={**base, "cursor": "!!"}).status_code == 422

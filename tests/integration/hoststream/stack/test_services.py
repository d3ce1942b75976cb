"""Smoke tests: each real service of the stack does its job."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import psycopg
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.config import Settings
from hoststream.kafka import consumer_config, producer_config

SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Probe",
        "namespace": "io.hoststream.test",
        "fields": [{"name": "host", "type": "string"}, {"name": "value", "type": "double"}],
    }
)


def consume_one(settings: Settings, topic: str, group: str, timeout_s: float = 30.0):
    consumer = Consumer(consumer_config(settings, group))
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return message
        raise AssertionError(f"nothing arrived on {topic} within {timeout_s}s")
    finally:
        consumer.close()


def test_avro_through_broker_and_registry(services: Settings, make_topic, unique: str) -> None:
    topic = make_topic()
    registry = SchemaRegistryClient({"url": services.schema_registry_url, "timeout": 10})
    context = SerializationContext(topic, MessageField.VALUE)
    serializer = AvroSerializer(
        registry, SCHEMA, conf={"subject.name.strategy": topic_subject_name_strategy}
    )
    value = serializer({"host": "h1", "value": 0.25}, context)

    producer = Producer(producer_config(services))
    producer.produce(topic, key=b"h1", value=value)
    assert producer.flush(10) == 0

    message = consume_one(services, topic, unique)
    raw = message.value()
    # Confluent framing: magic byte 0, then the 4-byte big-endian schema id.
    assert raw[0] == 0
    schema_id = int.from_bytes(raw[1:5], "big")
    registered = registry.get_latest_version(f"{topic}-value")
    assert registered.schema_id == schema_id
    assert AvroDeserializer(registry)(raw, context) == {"host": "h1", "value": 0.25}
    assert message.key() == b"h1"


def test_victoriametrics_sample_reads_back_by_promql(services: Settings) -> None:
    series = f"hoststream_smoke_{uuid.uuid4().hex[:8]}"
    now_ms = int(time.time() * 1000)
    line = {
        "metric": {"__name__": series, "instance": "h1"},
        "values": [42.5],
        "timestamps": [now_ms],
    }
    response = httpx.post(f"{services.vm_url}/api/v1/import", content=json.dumps(line))
    assert response.status_code == 204
    httpx.get(f"{services.vm_url}/internal/force_flush").raise_for_status()
    # A new series becomes searchable a moment after its samples are flushed.
    deadline = time.monotonic() + 15
    while True:
        result = httpx.get(
            f"{services.vm_url}/api/v1/query", params={"query": series, "nocache": "1"}
        ).json()
        assert result["status"] == "success"
        if result["data"]["result"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    [sample] = result["data"]["result"]
    assert sample["metric"]["instance"] == "h1"
    assert float(sample["value"][1]) == 42.5


def test_postgres_row_round_trip(services: Settings, unique: str) -> None:
    with psycopg.connect(services.sql_dsn.get_secret_value()) as conn:
        conn.execute(f"CREATE TEMP TABLE {unique} (host TEXT PRIMARY KEY, value DOUBLE PRECISION)")
        conn.execute(f"INSERT INTO {unique} VALUES (%s, %s)", ("h1", 0.5))
        conn.execute(
            f"INSERT INTO {unique} VALUES (%s, %s) "
            "ON CONFLICT (host) DO UPDATE SET value = excluded.value",
            ("h1", 0.75),
        )
        assert conn.execute(f"SELECT host, value FROM {unique}").fetchall() == [("h1", 0.75)]


def test_postgres_commits_survive_a_crash(services: Settings) -> None:
    # The SQL sink commits its Kafka offsets once PostgreSQL has committed a
    # batch: that commit must be on disk before PostgreSQL says so.
    with psycopg.connect(services.sql_dsn.get_secret_value()) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings"
                " WHERE name IN ('synchronous_commit', 'fsync')"
            ).fetchall()
        )
    assert settings == {"synchronous_commit": "on", "fsync": "on"}

"""The registry codecs against the real schema registry of the local stack.

confluent-kafka's own AvroSerializer and AvroDeserializer are the independent
party: each side must read what the other wrote. Every test uses subjects of
its own and deletes them afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.config import Settings
from hoststream.schemas import (
    AlertEvent,
    AlertState,
    AvroSchema,
    MetricEvent,
    MetricKind,
    RegistryAvroDeserializer,
    RegistryAvroSerializer,
    Sample,
    WindowAggregate,
    registry_client_for,
    schema_for,
    serializer_for,
)

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z

METRIC_EVENT = MetricEvent(
    host="db-7",
    family="disk",
    timestamp_ms=T0,
    seq=3,
    host_labels={"region": "us-east"},
    samples=(
        Sample(
            "node_filesystem_avail_bytes",
            1.5e11,
            {"device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"},
        ),
        Sample("node_disk_read_bytes_total", 9.0e12, {"device": "sda"}, MetricKind.COUNTER),
    ),
)
AGGREGATE = WindowAggregate(
    host="db-7",
    metric="node_disk_read_bytes_total",
    labels={"device": "sda"},
    kind=MetricKind.COUNTER,
    window_size_ms=60_000,
    window_start=T0,
    window_end=T0 + 60_000,
    count=6,
    sum=5.4e13,
    min=8.99e12,
    max=9.01e12,
    mean=9.0e12,
    last=9.01e12,
    p50=9.0e12,
    p90=9.009e12,
    p95=9.0095e12,
    p99=9.0099e12,
    quantile_relative_error=0.01,
    rate_per_second=3.3e5,
)
ALERT = AlertEvent(
    dedup_key="DiskFull/db-7/sda1",
    rule="DiskFull",
    state=AlertState.RESOLVED,
    severity="critical",
    host="db-7",
    metric="node_filesystem_avail_bytes",
    value=2.0e10,
    threshold=1.0e10,
    starts_at=T0,
    ends_at=T0 + 600_000,
    window_end=T0 + 600_000,
    event_time=T0 + 600_250,
    series_labels={"mountpoint": "/"},
    labels={"team": "storage"},
    annotations={"summary": "disk almost full", "runbook_url": "https://runbooks/disk"},
)
RECORDS = [
    pytest.param(METRIC_EVENT, id="metric-event"),
    pytest.param(AGGREGATE, id="window-aggregate"),
    pytest.param(ALERT, id="alert-event"),
]


@pytest.fixture
def registry(services: Settings) -> Iterator[SchemaRegistryClient]:
    """A client for the stack's registry that deletes the subjects the test used."""
    if services.schema_registry_url is None:
        pytest.fail("the services under test have no HOSTSTREAM_SCHEMA_REGISTRY_URL")
    client = registry_client_for(services)
    assert client is not None
    subjects_before = set(client.get_subjects())
    yield client
    for subject in set(client.get_subjects()) - subjects_before:
        try:
            client.delete_subject(subject)
            client.delete_subject(subject, permanent=True)
        except SchemaRegistryError:
            pass  # best effort: a leftover subject under a unique name harms no one


def fresh_client(settings: Settings) -> SchemaRegistryClient:
    """A client with empty caches, so that decoding really fetches by id."""
    client = registry_client_for(settings)
    assert client is not None
    return client


def value_ctx(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


@pytest.mark.parametrize("record", RECORDS)
def test_confluent_deserializer_reads_what_we_write(
    record: Any, registry: SchemaRegistryClient, services: Settings, unique: str
) -> None:
    ctx = value_ctx(f"{unique}.topic")
    data = RegistryAvroSerializer(registry, type(record))(record, ctx)

    decoded = AvroDeserializer(fresh_client(services))(data, ctx)

    assert isinstance(decoded, dict)
    assert type(record).from_avro(decoded) == record
    latest = registry.get_latest_version(f"{unique}.topic-value")
    assert int.from_bytes(data[1:5], "big") == latest.schema_id


@pytest.mark.parametrize("record", RECORDS)
def test_we_read_what_the_confluent_serializer_writes(
    record: Any, registry: SchemaRegistryClient, services: Settings, unique: str
) -> None:
    ctx = value_ctx(f"{unique}.topic")
    confluent = AvroSerializer(
        registry,
        schema_for(type(record)).text,
        lambda obj, _ctx: obj.to_avro(),
        # The topic-name strategy names the subject <topic>-value, as the contract says;
        # the client's newer default first asks an associations API Apicurio lacks.
        conf={"subject.name.strategy": topic_subject_name_strategy},
    )
    data = confluent(record, ctx)
    assert data is not None
    assert data[0] == 0

    decoded = RegistryAvroDeserializer(fresh_client(services), type(record))(data, ctx)

    assert decoded == record


def _next_version(schema: AvroSchema, field: dict[str, Any]) -> str:
    raw = json.loads(schema.text)
    raw["fields"].append(field)
    return json.dumps(raw)


@pytest.mark.parametrize("record_type", [MetricEvent, WindowAggregate, AlertEvent])
def test_registry_enforces_backward_compatibility(
    record_type: type, registry: SchemaRegistryClient, unique: str
) -> None:
    subject = f"{unique}.topic-value"
    registry.set_compatibility(subject_name=subject, level="BACKWARD")
    assert registry.get_compatibility(subject) == "BACKWARD"
    current = schema_for(record_type)
    v1 = registry.register_schema(subject, Schema(current.text, "AVRO"))

    optional = _next_version(
        current,
        {"name": "added_later", "type": ["null", "string"], "default": None, "doc": "optional"},
    )
    required = _next_version(current, {"name": "required_later", "type": "string", "doc": "x"})

    assert registry.test_compatibility(subject, Schema(optional, "AVRO")) is True
    v2 = registry.register_schema(subject, Schema(optional, "AVRO"))
    assert v2 != v1
    assert registry.test_compatibility(subject, Schema(required, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        registry.register_schema(subject, Schema(required, "AVRO"))
    assert refused.value.http_status_code == 409
    assert registry.get_versions(subject) == [1, 2]


def test_data_written_with_the_next_version_decodes_with_the_current_reader(
    registry: SchemaRegistryClient, services: Settings, unique: str
) -> None:
    topic = f"{unique}.metrics.disk"
    registry.set_compatibility(subject_name=f"{topic}-value", level="BACKWARD")
    record = METRIC_EVENT
    current = schema_for(MetricEvent)
    new = AvroSchema.from_json(
        _next_version(
            current,
            {"name": "added_later", "type": ["null", "string"], "default": None, "doc": "x"},
        ),
        source="next version",
    )
    old_data = RegistryAvroSerializer(registry, MetricEvent)(record, value_ctx(topic))
    new_data = RegistryAvroSerializer(registry, MetricEvent, schema=new)(record, value_ctx(topic))
    assert old_data[1:5] != new_data[1:5]

    old_reader = RegistryAvroDeserializer(fresh_client(services), MetricEvent)
    new_reader = RegistryAvroDeserializer(fresh_client(services), MetricEvent, schema=new)
    for data in (old_data, new_data):
        assert old_reader(data, value_ctx(topic)) == record
        assert new_reader(data, value_ctx(topic)) == record


def test_the_producers_plain_http_serializer_writes_what_the_registry_client_writes(
    registry: SchemaRegistryClient, services: Settings, unique: str
) -> None:
    # The agent registers its schema through SchemaIdClient, not confluent-kafka's
    # client: the same subject, the same id, the same bytes.
    ctx = value_ctx(f"{unique}.light")
    light = serializer_for(services, MetricEvent)(METRIC_EVENT, ctx)
    full = RegistryAvroSerializer(registry, MetricEvent)(METRIC_EVENT, ctx)
    assert light == full
    assert registry.get_latest_version(f"{unique}.light-value").schema_id == int.from_bytes(
        light[1:5], "big"
    )
    decoded = AvroDeserializer(registry)(light, ctx)
    assert decoded["host"] == METRIC_EVENT.host

"""Codecs without services: round trips, byte layouts, bad input, evolution, the factory.

The registry codecs run against confluent-kafka's in-memory mock registry.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections import Counter
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import schemaless_reader, schemaless_writer

from hoststream.config import Settings
from hoststream.errors import ConfigurationError, SerializationError
from hoststream.schemas import (
    SINGLE_OBJECT_MAGIC,
    AlertEvent,
    AvroSchema,
    MetricEvent,
    RegistryAvroDeserializer,
    RegistryAvroSerializer,
    Sample,
    SchemaRegistryUnavailableError,
    SingleObjectAvroDeserializer,
    SingleObjectAvroSerializer,
    WindowAggregate,
    codec_for,
    registry_client_for,
    schema_for,
    schema_versions,
)
from tests.support.records import T0, alert_event, metric_event, window_aggregate

RECORDS = [
    pytest.param(metric_event(), id="metric-event"),
    pytest.param(window_aggregate(), id="aggregate-counter"),
    pytest.param(window_aggregate(counter=False), id="aggregate-gauge"),
    pytest.param(alert_event(), id="alert-firing"),
    pytest.param(alert_event(resolved=True), id="alert-resolved"),
]
RECORD_TYPES = [MetricEvent, WindowAggregate, AlertEvent]


def ctx_for(topic: str = "metrics.cpu") -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def avro_body(schema: AvroSchema, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, schema.parsed, record)
    return out.getvalue()


class CountingRegistry(SchemaRegistryClient):
    """Confluent's in-memory mock registry, counting the calls the codecs make."""

    def __init__(self) -> None:  # no super().__init__: every call goes to the mock
        self.inner = SchemaRegistryClient.new_client({"url": "mock://unit"})
        self.calls: Counter[str] = Counter()

    def register_schema(
        self, subject_name: str, schema: Schema, normalize_schemas: bool = False
    ) -> int:
        self.calls["register_schema"] += 1
        return self.inner.register_schema(subject_name, schema, normalize_schemas)

    def lookup_schema(self, subject_name: str, schema: Schema, *args: Any, **kwargs: Any) -> Any:
        self.calls["lookup_schema"] += 1
        return self.inner.lookup_schema(subject_name, schema, *args, **kwargs)

    def get_schema(self, schema_id: int, *args: Any, **kwargs: Any) -> Schema:
        self.calls["get_schema"] += 1
        return self.inner.get_schema(schema_id, *args, **kwargs)


@pytest.fixture
def registry() -> CountingRegistry:
    return CountingRegistry()


# --- round trips --------------------------------------------------------------


@pytest.mark.parametrize("record", RECORDS)
def test_single_object_round_trip(record: Any) -> None:
    data = SingleObjectAvroSerializer(type(record))(record, ctx_for())
    assert SingleObjectAvroDeserializer(type(record))(data, ctx_for()) == record


@pytest.mark.parametrize("record", RECORDS)
def test_registry_round_trip(record: Any, registry: CountingRegistry) -> None:
    data = RegistryAvroSerializer(registry, type(record))(record, ctx_for())
    assert RegistryAvroDeserializer(registry, type(record))(data, ctx_for()) == record


def test_round_trip_keeps_exact_values() -> None:
    # Doubles and millisecond timestamps must come back bit for bit.
    event = MetricEvent(
        host="h",
        family="memory",
        timestamp_ms=253_402_300_799_999,  # 9999-12-31T23:59:59.999Z
        seq=2**40,
        samples=(Sample("node_memory_MemAvailable_bytes", 0.1 + 0.2), Sample("x", -0.0)),
    )
    serializer, deserializer = (
        SingleObjectAvroSerializer(MetricEvent),
        SingleObjectAvroDeserializer(MetricEvent),
    )
    back = deserializer(serializer(event))
    assert back.timestamp_ms == 253_402_300_799_999
    assert back.samples[0].value == 0.30000000000000004
    assert str(back.samples[1].value) == "-0.0"


# --- byte layout --------------------------------------------------------------


@pytest.mark.parametrize("record", RECORDS)
def test_single_object_layout(record: Any) -> None:
    schema = schema_for(type(record))
    data = SingleObjectAvroSerializer(type(record))(record, ctx_for())
    assert data[:2] == b"\xc3\x01" == SINGLE_OBJECT_MAGIC
    # The fingerprint test in test_schema_files checks these 8 bytes against an
    # independent CRC-64-AVRO; here they must be the schema's, little-endian.
    assert data[2:10] == schema.fingerprint
    assert data[10:] == avro_body(schema, record.to_avro())


@pytest.mark.parametrize("record", RECORDS)
def test_registry_layout_and_subject(record: Any, registry: CountingRegistry) -> None:
    topic = "metrics.agg.1m"
    data = RegistryAvroSerializer(registry, type(record))(record, ctx_for(topic))
    latest = registry.inner.get_latest_version(f"{topic}-value")
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == latest.schema_id
    assert latest.schema.schema_str is not None
    registered = AvroSchema.from_json(latest.schema.schema_str, source="registry")
    assert registered.canonical_form == schema_for(type(record)).canonical_form
    assert data[5:] == avro_body(schema_for(type(record)), record.to_avro())


def test_registry_ids_and_writer_schemas_are_cached(registry: CountingRegistry) -> None:
    serializer = RegistryAvroSerializer(registry, MetricEvent)
    deserializer = RegistryAvroDeserializer(registry, MetricEvent)
    for _ in range(3):
        deserializer(serializer(metric_event(), ctx_for("metrics.cpu")))
    serializer(metric_event(), ctx_for("metrics.memory"))
    assert registry.calls["register_schema"] == 2  # one per subject
    assert registry.calls["get_schema"] == 1
    assert serializer.schema_id(ctx_for("metrics.cpu")) == 1
    assert set(registry.inner.get_subjects()) == {"metrics.cpu-value", "metrics.memory-value"}


def test_registry_lookup_only_serializer_uses_the_registered_id(registry: CountingRegistry) -> None:
    schema_id = registry.inner.register_schema(
        "metrics.cpu-value", Schema(schema_for(MetricEvent).text, "AVRO")
    )
    data = RegistryAvroSerializer(registry, MetricEvent, auto_register=False)(
        metric_event(), ctx_for()
    )
    assert int.from_bytes(data[1:5], "big") == schema_id
    assert registry.calls["register_schema"] == 0


# --- bad input ----------------------------------------------------------------


def _single_object() -> tuple[SingleObjectAvroDeserializer[MetricEvent], bytes]:
    return SingleObjectAvroDeserializer(MetricEvent), SingleObjectAvroSerializer(MetricEvent)(
        metric_event()
    )


def _registry(registry: CountingRegistry) -> tuple[RegistryAvroDeserializer[MetricEvent], bytes]:
    good = RegistryAvroSerializer(registry, MetricEvent)(metric_event(), ctx_for())
    return RegistryAvroDeserializer(registry, MetricEvent), good


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda good: None, "has no value"),
        (lambda good: b"", "0 byte.*too short"),
        (lambda good: good[:9], "9 byte.*too short"),
        (
            lambda good: b"\xc3\x02" + good[2:],
            "starts with c3 02, not the Avro single-object magic",
        ),
        (lambda good: b"\x00" + good[1:], "looks like the Confluent wire format"),
        (lambda good: good[:2] + bytes(8) + good[10:], "fingerprint 0000000000000000.*none of the"),
        (lambda good: good[:-1], "malformed Avro body for io.hoststream.metrics.MetricEvent"),
        (lambda good: good[:10], "malformed Avro body"),
        (lambda good: good + b"\x00", "1 unexpected byte"),
        (lambda good: good[:10] + b"\xff" * 12, "malformed Avro body"),
    ],
)
def test_single_object_rejects_bad_bytes(mangle: Any, message: str) -> None:
    deserializer, good = _single_object()
    with pytest.raises(SerializationError, match=message) as caught:
        deserializer(mangle(good), ctx_for())
    assert "on topic 'metrics.cpu'" in str(caught.value)  # sinks log it with the DLQ record


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda good: None, "has no value"),
        (lambda good: b"\x00\x00\x00", "3 byte.*too short"),
        (lambda good: b"\x01" + good[1:], "starts with 0x01, not the Confluent wire format"),
        (lambda good: b"\xc3\x01" + good[2:], "starts with 0xc3"),
        (lambda good: b"\x00" + (999).to_bytes(4, "big") + good[5:], "schema id 999.*not know"),
        (lambda good: good[:-1], "malformed Avro body"),
        (lambda good: good[:5], "malformed Avro body"),
        (lambda good: good + b"\x01\x02", "2 unexpected byte"),
    ],
)
def test_registry_deserializer_rejects_bad_bytes(
    mangle: Any, message: str, registry: CountingRegistry
) -> None:
    deserializer, good = _registry(registry)
    with pytest.raises(SerializationError, match=message) as caught:
        deserializer(mangle(good), ctx_for())
    assert "on topic 'metrics.cpu'" in str(caught.value)


def test_registry_deserializer_refuses_a_record_of_another_type(registry: CountingRegistry) -> None:
    alert = RegistryAvroSerializer(registry, AlertEvent)(alert_event(), ctx_for("alerts"))
    with pytest.raises(SerializationError, match=r"a io.hoststream.alerts.AlertEvent.*wrong topic"):
        RegistryAvroDeserializer(registry, MetricEvent)(alert, ctx_for("metrics.cpu"))


def test_a_flood_of_undecodable_schema_ids_asks_the_registry_once_per_id(
    registry: CountingRegistry,
) -> None:
    alert = RegistryAvroSerializer(registry, AlertEvent)(alert_event(), ctx_for("alerts"))
    unknown = b"\x00\x00\x00\x99\x99" + alert[5:]
    deserializer = RegistryAvroDeserializer(registry, MetricEvent)
    registry.calls.clear()
    for _ in range(50):
        with pytest.raises(SerializationError, match="wrong topic"):
            deserializer(alert, ctx_for("metrics.cpu"))
        with pytest.raises(SerializationError, match="does not know"):
            deserializer(unknown, ctx_for("metrics.cpu"))
    assert registry.calls["get_schema"] == 2


def test_single_object_refuses_a_record_of_another_type() -> None:
    alert = SingleObjectAvroSerializer(AlertEvent)(alert_event())
    with pytest.raises(SerializationError, match=r"none of the \d+ known version.*MetricEvent"):
        SingleObjectAvroDeserializer(MetricEvent)(alert)


@pytest.mark.parametrize(
    "make", [SingleObjectAvroSerializer, None], ids=["single-object", "registry"]
)
def test_unencodable_records_are_reported(make: Any, registry: CountingRegistry) -> None:
    serializer = make(MetricEvent) if make else RegistryAvroSerializer(registry, MetricEvent)
    bad = MetricEvent(host=None, family="cpu", timestamp_ms=T0, samples=())  # type: ignore[arg-type]
    with pytest.raises(
        SerializationError, match=r"cannot encode MetricEvent as .*MetricEvent on topic"
    ):
        serializer(bad, ctx_for())


def test_registry_serializer_needs_a_topic(registry: CountingRegistry) -> None:
    with pytest.raises(SerializationError, match="needs a SerializationContext"):
        RegistryAvroSerializer(registry, MetricEvent)(metric_event())


def test_lookup_only_serializer_reports_an_unregistered_schema(registry: CountingRegistry) -> None:
    serializer = RegistryAvroSerializer(registry, MetricEvent, auto_register=False)
    with pytest.raises(SerializationError, match=r"looking up .* 'metrics.cpu-value'.*refused"):
        serializer(metric_event(), ctx_for())


def test_an_unreachable_registry_is_not_a_serialization_error() -> None:
    # Port 9 on loopback refuses connections: nothing to start, nothing to wait for.
    client = SchemaRegistryClient({"url": "http://127.0.0.1:9", "max.retries": 0})
    with pytest.raises(SchemaRegistryUnavailableError, match="did not answer") as caught:
        RegistryAvroSerializer(client, MetricEvent)(metric_event(), ctx_for())
    # Sinks send SerializationErrors to the dead-letter topic; an outage must not go there.
    assert not isinstance(caught.value, SerializationError)
    with pytest.raises(SchemaRegistryUnavailableError):
        RegistryAvroDeserializer(client, MetricEvent)(b"\x00\x00\x00\x00\x07\x00", ctx_for())


class FailingRegistry(SchemaRegistryClient):
    """A registry that answers every call with one HTTP error status."""

    def __init__(self, status: int) -> None:
        self.status = status

    def register_schema(self, *args: Any, **kwargs: Any) -> int:
        raise SchemaRegistryError(self.status, self.status * 100, "no")

    def get_schema(self, *args: Any, **kwargs: Any) -> Schema:
        raise SchemaRegistryError(self.status, self.status * 100, "no")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ConfigurationError),  # fix the credentials
        (403, ConfigurationError),
        (409, SerializationError),  # the schema itself was refused
        (422, SerializationError),
        (429, SchemaRegistryUnavailableError),  # retry later
        (500, SchemaRegistryUnavailableError),
        (503, SchemaRegistryUnavailableError),
    ],
)
def test_registry_failures_are_sorted_by_what_to_do(status: int, error: type[Exception]) -> None:
    client = FailingRegistry(status)
    with pytest.raises(error, match=f"HTTP {status}|{status}") as caught:
        RegistryAvroSerializer(client, MetricEvent)(metric_event(), ctx_for())
    assert isinstance(caught.value, SerializationError) == (error is SerializationError)
    with pytest.raises(error):
        RegistryAvroDeserializer(client, MetricEvent)(b"\x00\x00\x00\x00\x07\x00", ctx_for())


# --- schema evolution ---------------------------------------------------------


def next_version(schema: AvroSchema, field: dict[str, Any]) -> AvroSchema:
    """``schema`` with one more field, as the next release might add."""
    raw = json.loads(schema.text)
    raw["fields"].append(field)
    return AvroSchema.from_json(raw, source="next version")


OPTIONAL_FIELD = {
    "name": "added_later",
    "type": ["null", "string"],
    "default": None,
    "doc": "A field a later release adds, optional with a default.",
}


@pytest.mark.parametrize("record", RECORDS)
def test_next_version_reads_data_written_with_the_current_one(record: Any) -> None:
    current = schema_for(type(record))
    new = next_version(current, OPTIONAL_FIELD)
    data = SingleObjectAvroSerializer(type(record))(record)
    new_reader = SingleObjectAvroDeserializer(type(record), schema=new, writer_schemas=[current])
    assert new_reader(data) == record
    # The reader filled the field it has and the writer lacked with its default.
    resolved = schemaless_reader(io.BytesIO(data[10:]), current.parsed, new.parsed)
    assert isinstance(resolved, dict)
    assert resolved["added_later"] is None


@pytest.mark.parametrize("record", RECORDS)
def test_current_version_reads_data_written_with_the_next_one(record: Any) -> None:
    current = schema_for(type(record))
    new = next_version(current, OPTIONAL_FIELD)
    data = (
        SINGLE_OBJECT_MAGIC
        + new.fingerprint
        + avro_body(new, {**record.to_avro(), "added_later": "set by a newer producer"})
    )
    # Without the new version among its writer schemas the reader cannot decode...
    with pytest.raises(SerializationError, match=f"fingerprint {new.fingerprint.hex()}"):
        SingleObjectAvroDeserializer(type(record))(data)
    # ...with it, the old reader skips the field it does not know.
    old_reader = SingleObjectAvroDeserializer(
        type(record), writer_schemas=[*schema_versions(type(record)), new]
    )
    assert old_reader(data) == record


@pytest.mark.parametrize("record", RECORDS)
def test_registry_resolves_between_versions_by_schema_id(
    record: Any, registry: CountingRegistry
) -> None:
    new = next_version(schema_for(type(record)), OPTIONAL_FIELD)
    new_data = RegistryAvroSerializer(registry, type(record), schema=new)(record, ctx_for())
    old_data = RegistryAvroSerializer(registry, type(record))(record, ctx_for())
    assert new_data[1:5] != old_data[1:5]
    old_reader = RegistryAvroDeserializer(registry, type(record))
    new_reader = RegistryAvroDeserializer(registry, type(record), schema=new)
    for data in (new_data, old_data):
        assert old_reader(data) == record
        assert new_reader(data) == record


def test_a_new_required_field_breaks_reading_old_data() -> None:
    # The counter-example: what the compatibility rule forbids really fails.
    current = schema_for(MetricEvent)
    new = next_version(current, {"name": "required_later", "type": "string", "doc": "no default"})
    data = SingleObjectAvroSerializer(MetricEvent)(metric_event())
    reader = SingleObjectAvroDeserializer(MetricEvent, schema=new, writer_schemas=[current])
    with pytest.raises(SerializationError, match="required_later"):
        reader(data)


@pytest.mark.parametrize("record", RECORDS)
def test_data_of_every_released_version_reads_with_the_current_schema(record: Any) -> None:
    reader = SingleObjectAvroDeserializer(type(record))
    versions = schema_versions(type(record))
    assert versions[0] is schema_for(type(record))
    for old in versions:
        # Older versions may lack fields of the record: fastavro ignores extra keys.
        data = SINGLE_OBJECT_MAGIC + old.fingerprint + avro_body(old, record.to_avro())
        assert reader(data) == record, old.source


# --- the factory ----------------------------------------------------------------


def test_codec_without_registry_is_single_object() -> None:
    codec = codec_for(Settings(schema_registry_url=None), AlertEvent)
    assert codec.wire_format == "single-object"
    assert isinstance(codec.serializer, SingleObjectAvroSerializer)
    data = codec.serializer(alert_event(), ctx_for("alerts"))
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert codec.deserializer(data, ctx_for("alerts")) == alert_event()


def test_codec_with_registry_uses_the_confluent_format(registry: CountingRegistry) -> None:
    settings = Settings(schema_registry_url="http://registry.invalid:8081")
    codec = codec_for(settings, WindowAggregate, client=registry)
    assert codec.wire_format == "confluent"
    data = codec.serializer(window_aggregate(), ctx_for("metrics.agg.1m"))
    assert data[0] == 0
    assert codec.deserializer(data, ctx_for("metrics.agg.1m")) == window_aggregate()
    assert registry.calls["register_schema"] == 1


def test_codec_builds_its_own_client_from_the_settings() -> None:
    codec = codec_for(Settings(schema_registry_url="http://127.0.0.1:8081/x"), MetricEvent)
    assert isinstance(codec.serializer, RegistryAvroSerializer)
    assert isinstance(codec.deserializer, RegistryAvroDeserializer)


def test_registry_client_carries_basic_auth() -> None:
    settings = Settings(
        schema_registry_url="https://registry.example:8081",
        schema_registry_username="svc",
        schema_registry_password="s3cret:with-colon",  # type: ignore[arg-type]
    )
    client = registry_client_for(settings)
    assert client is not None
    assert client._rest_client.auth == ("svc", "s3cret:with-colon")
    assert registry_client_for(Settings(schema_registry_url=None)) is None


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"schema_registry_username": "svc"}, "HOSTSTREAM_SCHEMA_REGISTRY_PASSWORD"),
        ({"schema_registry_password": "pw"}, "HOSTSTREAM_SCHEMA_REGISTRY_USERNAME"),
        ({"schema_registry_url": "ftp://registry"}, "HOSTSTREAM_SCHEMA_REGISTRY_URL"),
    ],
)
def test_bad_registry_settings_name_the_setting(settings: dict[str, Any], setting: str) -> None:
    config = Settings(**{"schema_registry_url": "http://127.0.0.1:8081", **settings})
    with pytest.raises(ConfigurationError) as caught:
        codec_for(config, MetricEvent)
    assert caught.value.setting == setting
    assert "pw" not in str(caught.value)


def test_a_client_without_a_registry_url_is_refused(registry: CountingRegistry) -> None:
    with pytest.raises(ConfigurationError, match="HOSTSTREAM_SCHEMA_REGISTRY_URL"):
        codec_for(Settings(schema_registry_url=None), MetricEvent, client=registry)


@pytest.mark.parametrize("record", RECORDS)
def test_the_region_travels_with_every_record(record: Any) -> None:
    regional = dataclasses.replace(record, region="region-a")
    data = SingleObjectAvroSerializer(type(record))(regional)
    assert SingleObjectAvroDeserializer(type(record))(data) == regional


@pytest.mark.parametrize("record", RECORDS)
def test_data_from_before_regions_reads_with_no_region(record: Any) -> None:
    # Version 1 had no region: its data reads with the field's default, and a
    # region-aware record written with version 1 simply loses it.
    (v1,) = [
        schema for schema in schema_versions(type(record)) if schema.source.endswith(".v1.avsc")
    ]
    assert "region" not in {f["name"] for f in json.loads(v1.text)["fields"]}
    regional = dataclasses.replace(record, region="region-b")
    data = SINGLE_OBJECT_MAGIC + v1.fingerprint + avro_body(v1, regional.to_avro())
    assert SingleObjectAvroDeserializer(type(record))(data) == record
    field = next(
        f for f in json.loads(schema_for(type(record)).text)["fields"] if f["name"] == "region"
    )
    assert field["type"] == ["null", "string"]
    assert field["default"] is None


# --- enums ----------------------------------------------------------------------

ENUM_AT_INDEX_ONE = [
    pytest.param(metric_event(), id="metric-event-counter-kind"),
    pytest.param(window_aggregate(), id="aggregate-counter-kind"),
    pytest.param(alert_event(resolved=True), id="alert-resolved-state"),
]


def _enum_byte(schema: AvroSchema, record: Any) -> tuple[bytes, int]:
    """The record's body and where its first enum of index 1 (byte 0x02) is: the
    first byte that changes when every enum of the record is written as index 0."""
    body = avro_body(schema, record.to_avro())
    as_first = json.loads(
        json.dumps(record.to_avro())
        .replace('"COUNTER"', '"GAUGE"')
        .replace('"RESOLVED"', '"FIRING"')
    )
    other = avro_body(schema, as_first)
    at = next(i for i, (a, b) in enumerate(zip(body, other, strict=True)) if a != b)
    assert (body[at], other[at]) == (2, 0)
    return body, at


@pytest.mark.parametrize("record", ENUM_AT_INDEX_ONE)
@pytest.mark.parametrize(("byte", "index"), [(0x01, -1), (0x03, -2)])
def test_a_negative_enum_index_is_refused_not_read_from_the_end(
    record: Any, byte: int, index: int, registry: CountingRegistry
) -> None:
    # Read as symbols[index], -1 and -2 would be the last symbol and the one
    # before it: a COUNTER's kind byte corrupted to 0x03 would read as GAUGE.
    schema = schema_for(type(record))
    body, at = _enum_byte(schema, record)
    corrupt = body[:at] + bytes((byte,)) + body[at + 1 :]
    single = SingleObjectAvroDeserializer(type(record))
    with pytest.raises(SerializationError, match=f"enum index {index} is negative"):
        single(SINGLE_OBJECT_MAGIC + schema.fingerprint + corrupt, ctx_for())
    good = RegistryAvroSerializer(registry, type(record))(record, ctx_for())
    with pytest.raises(SerializationError, match=f"enum index {index} is negative"):
        RegistryAvroDeserializer(registry, type(record))(good[:5] + corrupt, ctx_for())
    # Resolving an older writer schema to the current one refuses it as well.
    for old in schema_versions(type(record))[1:]:
        old_body, old_at = _enum_byte(old, record)
        old_corrupt = old_body[:old_at] + bytes((byte,)) + old_body[old_at + 1 :]
        with pytest.raises(SerializationError, match="enum index"):
            single(SINGLE_OBJECT_MAGIC + old.fingerprint + old_corrupt, ctx_for())
    # The index past the end is refused as before; the body as written reads.
    past = body[:at] + b"\x04" + body[at + 1 :]
    with pytest.raises(SerializationError, match="malformed Avro body"):
        single(SINGLE_OBJECT_MAGIC + schema.fingerprint + past, ctx_for())
    assert single(SINGLE_OBJECT_MAGIC + schema.fingerprint + body, ctx_for()) == record

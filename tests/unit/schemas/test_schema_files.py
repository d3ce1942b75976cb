"""The ``.avsc`` files: loading, documentation, fingerprints and released versions."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from hoststream.errors import SerializationError
from hoststream.schemas import (
    AlertEvent,
    AvroSchema,
    MetricEvent,
    WindowAggregate,
    load_schema,
    schema_for,
    schema_versions,
)
from hoststream.schemas._loader import SCHEMA_STEMS, released_versions

RECORD_TYPES = [MetricEvent, WindowAggregate, AlertEvent]
FULL_NAMES = {
    MetricEvent: "io.hoststream.metrics.MetricEvent",
    WindowAggregate: "io.hoststream.metrics.WindowAggregate",
    AlertEvent: "io.hoststream.alerts.AlertEvent",
}

# --- CRC-64-AVRO written from the Avro specification, independent of fastavro ---

_EMPTY = 0xC15D213AA4D7A795


def _fp_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_FP_TABLE = _fp_table()


def rabin64(data: bytes) -> int:
    """The spec's ``fingerprint64``: an unsigned 64-bit Rabin fingerprint."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _FP_TABLE[(fp ^ byte) & 0xFF]
    return fp


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def canonical_form(schema: Any, namespace: str | None = None, seen: set[str] | None = None) -> str:
    """The spec's Parsing Canonical Form, for the constructs hoststream's schemas use."""
    seen = set() if seen is None else seen

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def full(name: str, ns: str | None) -> str:
        return name if "." in name or not ns else f"{ns}.{name}"

    if isinstance(schema, str):
        return dump(schema if schema in _PRIMITIVES else full(schema, namespace))
    if isinstance(schema, list):
        return "[" + ",".join(canonical_form(s, namespace, seen) for s in schema) + "]"
    kind = schema["type"]
    if kind in _PRIMITIVES:  # also drops logicalType and every other attribute
        return dump(kind)
    if kind == "array":
        return '{"type":"array","items":' + canonical_form(schema["items"], namespace, seen) + "}"
    if kind == "map":
        return '{"type":"map","values":' + canonical_form(schema["values"], namespace, seen) + "}"
    name = full(schema["name"], schema.get("namespace", namespace))
    if name in seen:
        return dump(name)
    seen.add(name)
    inner = name.rpartition(".")[0] or None
    parts = [f'"name":{dump(name)}', f'"type":{dump(kind)}']
    if kind == "record":
        fields = ",".join(
            f'{{"name":{dump(f["name"])},"type":{canonical_form(f["type"], inner, seen)}}}'
            for f in schema["fields"]
        )
        parts.append(f'"fields":[{fields}]')
    elif kind == "enum":
        parts.append(f'"symbols":{dump(schema["symbols"])}')
    elif kind == "fixed":
        parts.append(f'"size":{int(schema["size"])}')
    return "{" + ",".join(parts) + "}"


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Published in Avro's share/test/data/schema-tests.txt as signed longs.
        ('"null"', 7195948357588979594),
        ('"boolean"', -6970731678124411036),
        ('"int"', 8247732601305521295),
        (
            '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
            7843277075252814651,
        ),
    ],
)
def test_rabin_implementation_matches_published_vectors(text: str, expected: int) -> None:
    assert _signed(rabin64(text.encode())) == expected


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_fingerprint_is_crc64_avro_of_canonical_form_little_endian(record_type: type) -> None:
    schema = schema_for(record_type)
    avsc = resources.files("hoststream.schemas").joinpath(f"{SCHEMA_STEMS[record_type]}.avsc")
    independent = canonical_form(json.loads(avsc.read_text(encoding="utf-8")))
    assert schema.canonical_form == independent
    assert schema.fingerprint == rabin64(independent.encode()).to_bytes(8, "little")
    assert len(schema.fingerprint) == 8


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_schema_for_gives_the_record_type_s_schema(record_type: type) -> None:
    schema = schema_for(record_type)
    assert schema.full_name == FULL_NAMES[record_type]
    assert schema is schema_for(record_type)  # parsed once
    # The registry gets the file's content: same canonical form once re-parsed.
    assert AvroSchema.from_json(schema.text, source="text").fingerprint == schema.fingerprint


def _walk_named(schema: Any) -> list[dict[str, Any]]:
    """Every record and enum declared in ``schema``."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, list):
        for branch in schema:
            found += _walk_named(branch)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum"):
            found.append(schema)
        for field in schema.get("fields", []):
            found += _walk_named(field["type"])
        for key in ("items", "values"):
            if key in schema:
                found += _walk_named(schema[key])
    return found


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_every_type_and_field_is_documented(record_type: type) -> None:
    raw = json.loads(schema_for(record_type).text)
    for named in _walk_named(raw):
        assert named.get("doc", "").strip(), f"{named['name']} has no doc"
        for field in named.get("fields", []):
            assert field.get("doc", "").strip(), f"{named['name']}.{field['name']} has no doc"


def test_metric_kind_is_declared_identically_wherever_it_appears() -> None:
    # Two schemas that both name io.hoststream.metrics.MetricKind must agree on it.
    def kind_of(record_type: type) -> dict[str, Any]:
        raw = json.loads(schema_for(record_type).text)
        return next(n for n in _walk_named(raw) if n["name"] == "MetricKind")

    assert kind_of(MetricEvent)["symbols"] == kind_of(WindowAggregate)["symbols"]


def test_nullable_fields_default_to_null() -> None:
    fields = {f["name"]: f for f in json.loads(schema_for(WindowAggregate).text)["fields"]}
    assert fields["rate_per_second"]["type"] == ["null", "double"]
    assert fields["rate_per_second"]["default"] is None
    fields = {f["name"]: f for f in json.loads(schema_for(AlertEvent).text)["fields"]}
    assert fields["ends_at"]["type"][0] == "null"
    assert fields["ends_at"]["default"] is None
    assert fields["state"]["type"]["symbols"] == ["FIRING", "RESOLVED"]


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_newest_released_version_is_the_current_schema(record_type: type) -> None:
    # Changing an .avsc without adding schemas/history/<stem>.v<N+1>.avsc fails
    # here, so every version data may have been written with stays known.
    released = released_versions(record_type)
    assert released, "no released version in schemas/history/"
    numbers = [number for number, _ in released]
    assert numbers == list(range(len(numbers), 0, -1)), "versions must be 1..N without gaps"
    assert released[0][1].canonical_form == schema_for(record_type).canonical_form
    assert schema_versions(record_type)[0] is schema_for(record_type)


def test_load_schema_of_a_missing_file_says_so() -> None:
    with pytest.raises(SerializationError, match=r"schemas/no_such\.avsc is missing"):
        load_schema("no_such")


def test_schema_for_an_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(SerializationError, match=r"no Avro schema for dict.*MetricEvent"):
        schema_for(dict)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not a valid Avro schema"),
        ('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}', "valid"),
        ('"string"', "must declare a record"),
    ],
)
def test_invalid_schemas_are_refused(text: str, problem: str) -> None:
    with pytest.raises(SerializationError, match=problem):
        AvroSchema.from_json(text, source="test.avsc")

"""Another region's writer schemas, as copied into this region's ``<region>._schemas``.

Unit tests: the copy's records are handed in directly (no Kafka).
"""

from __future__ import annotations

import json

import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.config import Settings
from hoststream.errors import SchemaRegistryUnavailableError
from hoststream.replicated_schemas import ReplicatedSchemas, schema_record
from hoststream.schemas import RegistryAvroDeserializer, WindowAggregate, schema_for
from hoststream.schemas._codec import encode
from tests.support.records import window_aggregate


class CopyWithoutKafka(ReplicatedSchemas):
    """The copy's records given up front; every read of the topic is counted."""

    def __init__(self, records: list[tuple[bytes, bytes]]) -> None:
        super().__init__(Settings(), "region-a._schemas")
        self.records = records
        self.reads = 0

    def _read(self) -> None:
        self.reads += 1
        for key, value in self.records:
            self._remember(key, value)


def test_the_schemas_record_is_what_a_registry_answers_for_the_id() -> None:
    key, value = schema_record(42, '{"type": "string"}')
    assert key == b"42"
    assert json.loads(value) == {"schemaType": "AVRO", "schema": '{"type": "string"}'}


def test_a_value_with_the_source_regions_id_decodes_with_the_copied_schema() -> None:
    schema = schema_for(WindowAggregate)
    copy = CopyWithoutKafka([schema_record(7, schema.text)])
    ctx = SerializationContext("region-a.metrics.agg.1m", MessageField.VALUE)
    record = window_aggregate()
    value = encode(b"\x00\x00\x00\x00\x07", schema, record, ctx)
    assert RegistryAvroDeserializer(copy, WindowAggregate)(value, ctx) == record


def test_an_id_not_copied_yet_is_retried_and_the_copy_is_read_again_after_two_seconds() -> None:
    copy = CopyWithoutKafka([])
    with pytest.raises(SchemaRegistryUnavailableError, match=r"region-a\._schemas"):
        copy.get_schema(7)
    copy.records.append(schema_record(7, schema_for(WindowAggregate).text))
    with pytest.raises(SchemaRegistryUnavailableError):
        copy.get_schema(7)  # read a moment ago: not again yet
    assert copy.reads == 1
    copy._read_at -= 2.0
    assert copy.get_schema(7).schema_str == schema_for(WindowAggregate).text
    assert copy.reads == 2

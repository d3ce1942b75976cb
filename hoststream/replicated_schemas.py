"""Writer schemas that travel with mirrored records from one region to another.

Each region has its own schema registry, and registry ids are the registry's
own: id 7 in region A may be another schema, or none, in region B. A record
MirrorMaker 2 copies from A keeps A's id. So the stream processor, which
writes every mirrored record, also writes each writer schema it uses to its
region's compacted ``_schemas`` topic (key: the registry id; value: the
schema, as the registry's ``GET /schemas/ids/<id>`` answers), and MirrorMaker 2
copies that topic along with the aggregates, as Confluent registry users copy
the registry's own ``_schemas`` topic. A consumer in B decodes
``region-a.*`` topics with the schemas it finds in ``region-a._schemas`` on
its own cluster (:class:`ReplicatedSchemas`): neither A's registry nor A's
Kafka needs to answer.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.schema_registry import Schema
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.config import Settings
from hoststream.errors import SchemaRegistryUnavailableError
from hoststream.kafka import consumer_config
from hoststream.schemas import RecordSerializer, RegistryAvroSerializer

__all__ = ["ReplicatedSchemas", "schema_record", "writer_schema_message"]

log = logging.getLogger(__name__)

#: Seconds between two reads of a ``_schemas`` copy when an id is missing from it.
_REREAD_S = 2.0


def schema_record(schema_id: int, schema_text: str) -> tuple[bytes, bytes]:
    """The ``_schemas`` message (key, value) of a writer schema and its registry id."""
    value = json.dumps({"schemaType": "AVRO", "schema": schema_text}, separators=(",", ":"))
    return str(schema_id).encode(), value.encode()


def writer_schema_message(
    serializer: RecordSerializer[Any], topic: str
) -> tuple[bytes, bytes] | None:
    """The ``_schemas`` message of the schema ``serializer`` writes ``topic``'s values with.

    None in single-object encoding, whose fingerprints mean the same everywhere.
    Registers the schema if the serializer does (it would on its first record).
    """
    if not isinstance(serializer, RegistryAvroSerializer):
        return None
    schema_id = serializer.schema_id(SerializationContext(topic, MessageField.VALUE))
    return schema_record(schema_id, serializer.schema.text)


class ReplicatedSchemas:
    """Another region's writer schemas, read from the copy of its ``_schemas`` topic here.

    It answers ``get_schema(id)`` as a registry client does, so a
    :class:`~hoststream.schemas.RegistryAvroDeserializer` decodes that region's
    records with it.

    Args:
        settings: this region's Kafka.
        topic: the copy, e.g. ``region-a._schemas``.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self.topic = topic
        self._schemas: dict[int, Schema] = {}
        self._read_at = float("-inf")

    def get_schema(self, schema_id: int) -> Schema:
        """The writer schema of ``schema_id`` in the source region.

        Raises:
            SchemaRegistryUnavailableError: the copy does not hold it (yet:
                MirrorMaker 2 copies ``_schemas`` and the records apart); retry.
        """
        schema = self._schemas.get(schema_id)
        if schema is None and time.monotonic() - self._read_at >= _REREAD_S:
            self._read_at = time.monotonic()
            self._read()
            schema = self._schemas.get(schema_id)
        if schema is None:
            raise SchemaRegistryUnavailableError(
                f"schema id {schema_id} is not in {self.topic!r} (yet); MirrorMaker 2 copies"
                " the source region's writer schemas there: check that it runs, then retry"
            )
        return schema

    def _read(self) -> None:
        """Read the whole copy (a few records: one per schema version) up to its end."""
        config: dict[str, Any] = consumer_config(
            self._settings, "hoststream-replicated-schemas", **{"enable.partition.eof": True}
        )
        consumer = Consumer(config)
        try:
            metadata = consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
            if metadata is None or metadata.error is not None:
                return
            ends: dict[int, int] = {}
            for partition in metadata.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=10
                )
                if high > low:
                    ends[partition] = high
            if not ends:
                return
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in ends])
            deadline = time.monotonic() + 30
            while ends and time.monotonic() < deadline:
                message = consumer.poll(1.0)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        ends.pop(message.partition() or 0, None)
                    continue
                self._remember(message.key(), message.value())
                partition, offset = message.partition(), message.offset()
                if partition in ends and offset is not None and offset + 1 >= ends[partition]:
                    del ends[partition]
        except KafkaException as exc:
            log.warning("could not read %s: %s", self.topic, exc)
        finally:
            consumer.close()

    def _remember(self, key: bytes | None, value: bytes | None) -> None:
        try:
            schema_id = int(key or b"")
            record = json.loads(value or b"")
            self._schemas[schema_id] = Schema(record["schema"], record.get("schemaType", "AVRO"))
        except (ValueError, KeyError, TypeError):
            log.warning("%s holds a record that is not a schema (key %r)", self.topic, key)

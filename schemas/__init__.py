"""The Avro schemas (``*.avsc``) and their codecs.

Start with :func:`codec_for`: it gives a record type's serializer and
deserializer in the wire format the settings call for (:func:`serializer_for`
gives a producer's serializer alone, without confluent-kafka's registry client). Serializers are
confluent-kafka style callables ``(record, SerializationContext) -> bytes`` and
deserializers ``(bytes, SerializationContext) -> record``; both raise
:class:`hoststream.errors.SerializationError` naming what was wrong.

- With a schema registry: the Confluent wire format (``0x00``, 4-byte
  big-endian schema id, Avro body), subject ``<topic>-value``.
- Without: Avro single-object encoding (``C3 01``, 8-byte little-endian
  CRC-64-AVRO fingerprint, Avro body).
"""

from hoststream.schemas._codec import AvroRecord, RecordDeserializer, RecordSerializer
from hoststream.schemas._event_writer import fixed_parts
from hoststream.schemas._factory import Codec, WireFormat, codec_for, serializer_for
from hoststream.schemas._layout import AvroReader, EventLayout, event_layout, written_layout
from hoststream.schemas._loader import AvroSchema, load_schema, schema_for, schema_versions
from hoststream.schemas._registry import (
    RegistryAvroDeserializer,
    RegistryAvroSerializer,
    SchemaRegistryUnavailableError,
    WriterSchemas,
    registry_client_for,
)
from hoststream.schemas._single_object import (
    SINGLE_OBJECT_MAGIC,
    SingleObjectAvroDeserializer,
    SingleObjectAvroSerializer,
)
from hoststream.schemas.records import (
    FAMILIES,
    AlertEvent,
    AlertState,
    EventBatch,
    EventValues,
    MetricEvent,
    MetricKind,
    Sample,
    WindowAggregate,
)

__all__ = [
    "FAMILIES",
    "SINGLE_OBJECT_MAGIC",
    "AlertEvent",
    "AlertState",
    "AvroReader",
    "AvroRecord",
    "AvroSchema",
    "Codec",
    "EventBatch",
    "EventLayout",
    "EventValues",
    "MetricEvent",
    "MetricKind",
    "RecordDeserializer",
    "RecordSerializer",
    "RegistryAvroDeserializer",
    "RegistryAvroSerializer",
    "Sample",
    "SchemaRegistryUnavailableError",
    "SingleObjectAvroDeserializer",
    "SingleObjectAvroSerializer",
    "WindowAggregate",
    "WireFormat",
    "WriterSchemas",
    "codec_for",
    "event_layout",
    "fixed_parts",
    "load_schema",
    "registry_client_for",
    "schema_for",
    "schema_versions",
    "serializer_for",
    "written_layout",
]

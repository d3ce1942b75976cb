"""Avro single-object encoding, used when no schema registry is configured.

A value is ``C3 01``, the writer schema's 8-byte little-endian CRC-64-AVRO
fingerprint, then the Avro binary body
(https://avro.apache.org/docs/1.12.0/specification/#single-object-encoding).
The reader must already know the writer schema: it looks the fingerprint up
among the versions in :func:`schemas.schema_versions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Generic

from confluent_kafka.serialization import SerializationContext

from hoststream.errors import SerializationError
from hoststream.schemas._codec import R, decode, describe, encode
from hoststream.schemas._layout import batch_image, bodies_for
from hoststream.schemas._loader import AvroSchema, schema_for, schema_versions
from hoststream.schemas.records import EventValues, MetricEvent

if TYPE_CHECKING:
    from hoststream.schemas._batch import BatchImage

__all__ = ["SINGLE_OBJECT_MAGIC", "SingleObjectAvroDeserializer", "SingleObjectAvroSerializer"]

#: The two bytes every single-object encoded value starts with.
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_HEADER_SIZE = len(SINGLE_OBJECT_MAGIC) + 8


class SingleObjectAvroSerializer(Generic[R]):
    """Encodes records as Avro single objects: magic, schema fingerprint, body.

    Call it like confluent-kafka's serializers: ``serializer(record, ctx)``; the
    context is only named in error messages.
    """

    __slots__ = ("_bodies", "_prefix", "_schema")

    def __init__(self, record_type: type[R], *, schema: AvroSchema | None = None) -> None:
        """
        Args:
            record_type: the record class this serializer encodes.
            schema: the writer schema; default: the record type's current schema.
        """
        self._schema = schema if schema is not None else schema_for(record_type)
        self._prefix = SINGLE_OBJECT_MAGIC + self._schema.fingerprint
        self._bodies = bodies_for(record_type, self._schema)

    @property
    def schema(self) -> AvroSchema:
        """The writer schema."""
        return self._schema

    def __call__(self, obj: R, ctx: SerializationContext | None = None, /) -> bytes:
        if self._bodies is not None and isinstance(obj, MetricEvent):
            return self._prefix + self._bodies(obj, ctx)
        return encode(self._prefix, self._schema, obj, ctx)

    def encode_values(self, values: EventValues, ctx: SerializationContext | None = None) -> bytes:
        """The value of ``values.event()``, written by its learned layout (MetricEvent only)."""
        if self._bodies is None:
            return encode(self._prefix, self._schema, values.event(), ctx)
        return self._prefix + self._bodies.values_body(values, ctx)

    def batch_image(
        self, templates: Sequence[MetricEvent], contexts: Sequence[SerializationContext]
    ) -> BatchImage | None:
        """A :class:`~schemas._batch.BatchImage` of the events of ``templates``; None
        until each template's values were written once (:meth:`encode_values`).
        """
        return batch_image(self._bodies, templates, [self._prefix] * len(templates))


class SingleObjectAvroDeserializer(Generic[R]):
    """Decodes Avro single objects into records, resolving to the current schema.

    Values written with any known version of the schema decode; an unknown
    fingerprint raises :class:`~hoststream.errors.SerializationError`.
    """

    __slots__ = ("_record_type", "_schema", "_writers")

    def __init__(
        self,
        record_type: type[R],
        *,
        schema: AvroSchema | None = None,
        writer_schemas: Iterable[AvroSchema] | None = None,
    ) -> None:
        """
        Args:
            record_type: the record class to build.
            schema: the reader schema; default: the record type's current schema.
            writer_schemas: the schemas values may have been written with
                (the reader schema is always one); default: every version in
                :func:`schemas.schema_versions`.
        """
        self._record_type = record_type
        self._schema = schema if schema is not None else schema_for(record_type)
        known = schema_versions(record_type) if writer_schemas is None else writer_schemas
        # fingerprint -> (writer schema, reader schema or None when they are the same)
        self._writers: dict[bytes, tuple[AvroSchema, AvroSchema | None]] = {
            self._schema.fingerprint: (self._schema, None)
        }
        for writer in known:
            if writer.fingerprint not in self._writers:
                self._writers[writer.fingerprint] = (writer, self._schema)

    @property
    def schema(self) -> AvroSchema:
        """The reader schema."""
        return self._schema

    def __call__(self, data: bytes | None, ctx: SerializationContext | None = None, /) -> R:
        if data is None:
            raise SerializationError(f"message{describe(ctx)} has no value (a tombstone)")
        if len(data) < _HEADER_SIZE:
            raise SerializationError(
                f"value{describe(ctx)} is {len(data)} byte(s), too short for Avro single-object"
                " encoding (2 magic bytes and an 8-byte schema fingerprint)"
            )
        if data[:2] != SINGLE_OBJECT_MAGIC:
            raise SerializationError(
                f"value{describe(ctx)} starts with {data[:2].hex(' ')}, not the Avro"
                " single-object magic c3 01"
                + (" (it looks like the Confluent wire format)" if data[0] == 0 else "")
            )
        fingerprint = data[2:_HEADER_SIZE]
        entry = self._writers.get(fingerprint)
        if entry is None:
            raise SerializationError(
                f"value{describe(ctx)} was written with a schema of fingerprint"
                f" {fingerprint.hex()}, which is none of the {len(self._writers)} known"
                f" version(s) of {self._schema.full_name}; was it written by a newer"
                " hoststream, or for another topic?"
            )
        return decode(
            data, _HEADER_SIZE, entry[0], entry[1], record_type=self._record_type, ctx=ctx
        )

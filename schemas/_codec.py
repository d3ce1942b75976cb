"""What every codec shares: the record protocol, the callables' shapes, the Avro body.

Only this module and :mod:`schemas._loader` import fastavro, so the rest of
hoststream sees records and bytes, never Avro.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, Protocol, Self, TypeVar

from confluent_kafka.serialization import SerializationContext
from fastavro import schemaless_reader, schemaless_writer

from hoststream.errors import SerializationError
from hoststream.schemas._loader import AvroSchema

__all__ = ["AvroRecord", "RecordDeserializer", "RecordSerializer"]


class AvroRecord(Protocol):
    """A record with an Avro schema: :class:`~schemas.records.MetricEvent` and its siblings."""

    def to_avro(self) -> dict[str, Any]: ...

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self: ...


R = TypeVar("R", bound=AvroRecord)
R_contra = TypeVar("R_contra", bound=AvroRecord, contravariant=True)
R_co = TypeVar("R_co", bound=AvroRecord, covariant=True)


class RecordSerializer(Protocol[R_contra]):
    """Turns a record into a message value, as confluent-kafka's serializers do."""

    def __call__(self, obj: R_contra, ctx: SerializationContext | None = None, /) -> bytes: ...


class RecordDeserializer(Protocol[R_co]):
    """Turns a message value back into a record; raises SerializationError on bad bytes."""

    def __call__(self, data: bytes | None, ctx: SerializationContext | None = None, /) -> R_co: ...


def describe(ctx: SerializationContext | None) -> str:
    """Where a message came from, for error messages: " on topic 'x'", or "" without a context."""
    return f" on topic {ctx.topic!r}" if ctx is not None else ""


def encode(
    prefix: bytes, schema: AvroSchema, obj: AvroRecord, ctx: SerializationContext | None
) -> bytes:
    """``prefix`` followed by the Avro binary encoding of ``obj`` under ``schema``."""
    out = BytesIO()
    out.write(prefix)
    try:
        schemaless_writer(out, schema.parsed, obj.to_avro())
    # fastavro reports a value that does not fit the schema as ValueError,
    # TypeError, KeyError or others, depending on the type and the field.
    except Exception as exc:
        raise SerializationError(
            f"cannot encode {type(obj).__name__} as {schema.full_name}{describe(ctx)}: {exc}"
        ) from exc
    return out.getvalue()


def decode(
    data: bytes,
    offset: int,
    writer: AvroSchema,
    reader: AvroSchema | None,
    *,
    record_type: type[R],
    ctx: SerializationContext | None,
) -> R:
    """Decode the Avro body that starts at ``data[offset]`` into a ``record_type``.

    Args:
        data: the whole message value.
        offset: length of the header before the body.
        writer: the schema the body was written with.
        reader: the schema to resolve to, or None when it is the writer schema.
        record_type: the record class to build.
        ctx: the message's context, named in error messages.
    """
    fo = BytesIO(data)  # shares the bytes object's buffer: seeking avoids a copy
    fo.seek(offset)
    try:
        record = schemaless_reader(fo, writer.reading, None if reader is None else reader.parsed)
    # A corrupt or truncated body surfaces as EOFError, IndexError,
    # UnicodeDecodeError, ValueError, ...; resolution failures as
    # SchemaResolutionError. All mean the same thing to a caller: bad bytes.
    except Exception as exc:
        raise SerializationError(
            f"malformed Avro body for {writer.full_name} (writer schema {writer.source})"
            f"{describe(ctx)}: {type(exc).__name__}: {exc}"
        ) from exc
    extra = len(data) - fo.tell()
    if extra:
        raise SerializationError(
            f"{extra} unexpected byte(s) after the {writer.full_name} record"
            f" (writer schema {writer.source}){describe(ctx)}"
        )
    if not isinstance(record, dict):  # the loader admits only record schemas
        raise SerializationError(f"{writer.source} did not decode to a record{describe(ctx)}")
    try:
        return record_type.from_avro(record)
    except (KeyError, ValueError, TypeError) as exc:
        raise SerializationError(
            f"{writer.full_name} record{describe(ctx)} does not fit"
            f" {record_type.__name__}: {type(exc).__name__}: {exc}"
        ) from exc

"""Avro in the Confluent wire format, with schemas kept in a schema registry.

A value is ``0x00``, the writer schema's registry id as a 4-byte big-endian
integer, then the Avro binary body. The subject is ``<topic>-value``
(TopicNameStrategy), so any Confluent-compatible consumer can decode it.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Generic, Protocol

from confluent_kafka.serialization import SerializationContext

from hoststream.errors import (
    ConfigurationError,
    HoststreamError,
    SchemaRegistryUnavailableError,
    SerializationError,
)
from hoststream.schemas._codec import R, decode, describe, encode
from hoststream.schemas._layout import batch_image, bodies_for
from hoststream.schemas._loader import AvroSchema, schema_for
from hoststream.schemas._schema_ids import RegistryHttpError, SchemaIdClient
from hoststream.schemas.records import EventValues, MetricEvent

if TYPE_CHECKING:
    # confluent-kafka's registry client is imported only where one is built or
    # called: the producer agent registers its schema through SchemaIdClient
    # and never loads it (about 20 MiB resident).
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    from hoststream.config import Settings
    from hoststream.schemas._batch import BatchImage

__all__ = [
    "RegistryAvroDeserializer",
    "RegistryAvroSerializer",
    "SchemaRegistryUnavailableError",
    "WriterSchemas",
    "registry_client_for",
    "schema_id_client_for",
]

MAGIC_BYTE = 0
#: Schema ids remembered as never decoding, at most (then forgotten, and asked again).
_MAX_REFUSED_IDS = 10_000
_HEADER = struct.Struct(">BI")


@cache
def _transport_errors() -> tuple[type[Exception], ...]:
    # confluent-kafka talks HTTP through httpx2 when it is installed, else httpx;
    # their errors share no base class, so catch both.
    errors: list[type[Exception]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).HTTPError)
        except ImportError:
            continue
    return tuple(errors)


@cache
def _registry_errors() -> tuple[type[Exception], ...]:
    from confluent_kafka.schema_registry import SchemaRegistryError

    return (SchemaRegistryError, *_transport_errors())


class WriterSchemas(Protocol):
    """Where a deserializer finds the writer schema of an id: a registry client, or
    another region's schemas copied here (:mod:`hoststream.replicated_schemas`)."""

    def get_schema(self, schema_id: int) -> Schema: ...


def registry_client_for(settings: Settings) -> SchemaRegistryClient | None:
    """A registry client for ``settings.schema_registry_url``, or None when it is unset.

    Raises:
        ConfigurationError: the URL is invalid, or only one of username and
            password is set.
    """
    if settings.schema_registry_url is None:
        return None
    from confluent_kafka.schema_registry import SchemaRegistryClient

    # The client waits forever by default: a registry that stops answering would
    # hang the producer or a sink instead of raising a retryable error.
    conf: dict[str, object] = {"url": settings.schema_registry_url, "timeout": 10}
    credentials = _registry_credentials(settings)
    if settings.tls_ca_file is not None:
        conf["ssl.ca.location"] = str(settings.tls_ca_file)
    if credentials is not None:
        conf["basic.auth.user.info"] = ":".join(credentials)
    try:
        return SchemaRegistryClient(conf)
    except (ValueError, TypeError) as exc:
        # The client's messages name the problem but never the password.
        raise ConfigurationError("HOSTSTREAM_SCHEMA_REGISTRY_URL", str(exc)) from exc


def schema_id_client_for(settings: Settings) -> SchemaIdClient | None:
    """A :class:`SchemaIdClient` for ``settings.schema_registry_url``, or None when it is unset.

    What a producer needs of the registry, without confluent-kafka's client.

    Raises:
        ConfigurationError: the URL is invalid, or only one of username and
            password is set.
    """
    if settings.schema_registry_url is None:
        return None
    credentials = _registry_credentials(settings)
    username, password = credentials if credentials is not None else (None, None)
    return SchemaIdClient(
        settings.schema_registry_url,
        username=username,
        password=password,
        ca_file=settings.tls_ca_file,
    )


def _registry_credentials(settings: Settings) -> tuple[str, str] | None:
    username = settings.schema_registry_username
    password = settings.schema_registry_password
    if (username is None) != (password is None):
        missing = "PASSWORD" if password is None else "USERNAME"
        raise ConfigurationError(
            f"HOSTSTREAM_SCHEMA_REGISTRY_{missing}",
            "set both HOSTSTREAM_SCHEMA_REGISTRY_USERNAME and _PASSWORD, or neither",
        )
    if username is None or password is None:
        return None
    return username, password.get_secret_value()


def _registry_failure(exc: Exception, doing: str) -> HoststreamError:
    """Sort a registry call's failure by what the caller should do about it.

    Only a refusal that concerns the schema is a SerializationError: sinks send
    those messages to the dead-letter topic, which would be wrong for an
    outage (retry) or for bad credentials (fix the configuration).
    """
    status = getattr(exc, "http_status_code", None)
    if (
        # Both registry clients' HTTP errors carry the status; transport errors do not.
        not isinstance(status, int)
        or not 400 <= status < 500
        or status in (408, 429)  # a timeout or rate limit passes with time
    ):
        return SchemaRegistryUnavailableError(
            f"{doing}: the schema registry did not answer ({type(exc).__name__}: {exc});"
            " check HOSTSTREAM_SCHEMA_REGISTRY_URL and that the registry is running, then retry"
        )
    if status in (401, 403):
        return ConfigurationError(
            "HOSTSTREAM_SCHEMA_REGISTRY_USERNAME",
            f"{doing}: the registry refused the credentials (HTTP {status});"
            " check HOSTSTREAM_SCHEMA_REGISTRY_USERNAME and _PASSWORD",
        )
    message = getattr(exc, "error_message", exc)
    return SerializationError(f"{doing}: the registry refused (HTTP {status}): {message}")


class RegistryAvroSerializer(Generic[R]):
    """Encodes records in the Confluent wire format under the subject ``<topic>-value``.

    Call it like confluent-kafka's serializers: ``serializer(record, ctx)``. The
    schema id is looked up once per subject, then cached.
    """

    __slots__ = ("_auto_register", "_bodies", "_client", "_prefixes", "_schema")

    def __init__(
        self,
        client: SchemaRegistryClient | SchemaIdClient,
        record_type: type[R],
        *,
        schema: AvroSchema | None = None,
        auto_register: bool = True,
    ) -> None:
        """
        Args:
            client: the schema registry, e.g. from :func:`registry_client_for`,
                or the lighter :func:`schema_id_client_for` (a producer's).
            record_type: the record class this serializer encodes.
            schema: the writer schema; default: the record type's current schema.
            auto_register: register the schema under the subject when it is not
                there yet (producers); False only looks it up and fails if absent.
        """
        self._client = client
        self._schema = schema if schema is not None else schema_for(record_type)
        self._bodies = bodies_for(record_type, self._schema)
        self._auto_register = auto_register
        # (topic, field) -> the 5-byte header: one dict lookup per message.
        self._prefixes: dict[tuple[str, str], bytes] = {}

    @property
    def schema(self) -> AvroSchema:
        """The writer schema."""
        return self._schema

    def __call__(self, obj: R, ctx: SerializationContext | None = None, /) -> bytes:
        if ctx is None:
            raise SerializationError(
                "the schema registry serializer needs a SerializationContext naming the topic:"
                " the subject is <topic>-value"
            )
        prefix = self._prefixes.get((ctx.topic, ctx.field))
        if prefix is None:
            prefix = _HEADER.pack(MAGIC_BYTE, self._schema_id(ctx))
            self._prefixes[(ctx.topic, ctx.field)] = prefix
        if self._bodies is not None and isinstance(obj, MetricEvent):
            return prefix + self._bodies(obj, ctx)
        return encode(prefix, self._schema, obj, ctx)

    def encode_values(self, values: EventValues, ctx: SerializationContext | None = None) -> bytes:
        """The value of ``values.event()``, written by its learned layout (MetricEvent only)."""
        if self._bodies is None or ctx is None:
            return self(values.event(), ctx)  # type: ignore[arg-type]
        prefix = self._prefixes.get((ctx.topic, ctx.field))
        if prefix is None:
            return self(values.event(), ctx)  # type: ignore[arg-type]
        return prefix + self._bodies.values_body(values, ctx)

    def batch_image(
        self, templates: Sequence[MetricEvent], contexts: Sequence[SerializationContext]
    ) -> BatchImage | None:
        """A :class:`~schemas._batch.BatchImage` of the events of ``templates``, each
        on its context's topic; None until each template's values were written
        once (:meth:`encode_values`), which learned its layout and schema id.
        """
        return batch_image(
            self._bodies,
            templates,
            [self._prefixes.get((ctx.topic, ctx.field)) for ctx in contexts],
        )

    def schema_id(self, ctx: SerializationContext) -> int:
        """The registry id of the writer schema under ``ctx``'s subject (cached)."""
        prefix = self._prefixes.get((ctx.topic, ctx.field))
        if prefix is not None:
            return int(_HEADER.unpack(prefix)[1])
        return self._schema_id(ctx)

    def _schema_id(self, ctx: SerializationContext) -> int:
        subject = ctx.topic + "-" + ctx.field
        doing = f"{'registering' if self._auto_register else 'looking up'} {self._schema.full_name}"
        doing += f" under subject {subject!r}"
        client = self._client
        schema_id: int | None
        if isinstance(client, SchemaIdClient):
            try:
                if self._auto_register:
                    schema_id = client.register(subject, self._schema.text)
                else:
                    schema_id = client.lookup(subject, self._schema.text)
            except (RegistryHttpError, OSError) as exc:
                raise _registry_failure(exc, doing) from exc
            return schema_id
        from confluent_kafka.schema_registry import Schema

        schema = Schema(self._schema.text, "AVRO")
        try:
            if self._auto_register:
                schema_id = client.register_schema(subject, schema)
            else:
                schema_id = client.lookup_schema(subject, schema).schema_id
        except _registry_errors() as exc:
            raise _registry_failure(exc, doing) from exc
        if not isinstance(schema_id, int):
            raise SerializationError(f"{doing}: the registry answered without a schema id")
        return schema_id


class RegistryAvroDeserializer(Generic[R]):
    """Decodes Confluent wire-format values into records, resolving to the current schema.

    The writer schema is fetched from the registry by the id in the value (once
    per id), so data written with older or newer compatible versions decodes.
    """

    __slots__ = ("_client", "_record_type", "_refused", "_schema", "_writers")

    def __init__(
        self,
        client: WriterSchemas,
        record_type: type[R],
        *,
        schema: AvroSchema | None = None,
    ) -> None:
        """
        Args:
            client: the schema registry, e.g. from :func:`registry_client_for`,
                or another region's writer schemas for records mirrored from it.
            record_type: the record class to build.
            schema: the reader schema; default: the record type's current schema.
        """
        self._client = client
        self._record_type = record_type
        self._schema = schema if schema is not None else schema_for(record_type)
        # schema id -> (writer schema, reader schema or None when they are the same)
        self._writers: dict[int, tuple[AvroSchema, AvroSchema | None]] = {}
        # schema id -> why values naming it never decode here (unknown to the
        # registry, not Avro, another record): a flood of such messages must
        # not cost a registry request and a schema parse each.
        self._refused: dict[int, str] = {}

    @property
    def schema(self) -> AvroSchema:
        """The reader schema."""
        return self._schema

    def __call__(self, data: bytes | None, ctx: SerializationContext | None = None, /) -> R:
        if data is None:
            raise SerializationError(f"message{describe(ctx)} has no value (a tombstone)")
        if len(data) < _HEADER.size:
            raise SerializationError(
                f"value{describe(ctx)} is {len(data)} byte(s), too short for the Confluent"
                f" wire format (magic byte and 4-byte schema id)"
            )
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise SerializationError(
                f"value{describe(ctx)} starts with 0x{data[0]:02x}, not the Confluent wire"
                f" format's magic byte 0x00"
            )
        entry = self._writers.get(schema_id)
        if entry is None:
            refused = self._refused.get(schema_id)
            if refused is not None:
                raise SerializationError(f"value{describe(ctx)} {refused}")
            entry = self._resolve(schema_id, ctx)
        return decode(
            data, _HEADER.size, entry[0], entry[1], record_type=self._record_type, ctx=ctx
        )

    def _resolve(
        self, schema_id: int, ctx: SerializationContext | None
    ) -> tuple[AvroSchema, AvroSchema | None]:
        from confluent_kafka.schema_registry import SchemaRegistryError

        try:
            registered = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise self._refuse(
                    schema_id, ctx, f"names schema id {schema_id}, which the registry does not know"
                ) from exc
            raise _registry_failure(exc, f"fetching schema id {schema_id}") from exc
        except _transport_errors() as exc:
            raise _registry_failure(exc, f"fetching schema id {schema_id}") from exc
        if registered.schema_type not in (None, "AVRO") or registered.schema_str is None:
            raise self._refuse(
                schema_id,
                ctx,
                f"names schema id {schema_id}, a {registered.schema_type} schema, not Avro",
            )
        try:
            writer = AvroSchema.from_json(
                registered.schema_str, source=f"registry schema id {schema_id}"
            )
        except SerializationError as exc:
            raise self._refuse(schema_id, ctx, f"names schema id {schema_id}: {exc}") from exc
        if writer.full_name not in self._schema.names:
            # Caught here rather than by fastavro for a message that says what happened.
            raise self._refuse(
                schema_id,
                ctx,
                f"was written with schema id {schema_id}, a {writer.full_name}, which does not"
                f" resolve to {self._schema.full_name}; was it produced to the wrong topic?",
            )
        same = writer.canonical_form == self._schema.canonical_form
        entry = (writer, None if same else self._schema)
        self._writers[schema_id] = entry
        return entry

    def _refuse(
        self, schema_id: int, ctx: SerializationContext | None, why: str
    ) -> SerializationError:
        """The error for a schema id that never decodes here, remembered for the next value."""
        if len(self._refused) >= _MAX_REFUSED_IDS:
            self._refused.clear()
        self._refused[schema_id] = why
        return SerializationError(f"value{describe(ctx)} {why}")

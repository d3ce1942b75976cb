"""Choosing the wire format from the settings: a registry if one is configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal

from hoststream.errors import ConfigurationError
from hoststream.schemas._codec import R, RecordDeserializer, RecordSerializer
from hoststream.schemas._registry import (
    RegistryAvroDeserializer,
    RegistryAvroSerializer,
    registry_client_for,
    schema_id_client_for,
)
from hoststream.schemas._single_object import (
    SingleObjectAvroDeserializer,
    SingleObjectAvroSerializer,
)

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from hoststream.config import Settings

__all__ = ["Codec", "WireFormat", "codec_for", "serializer_for"]

#: ``confluent``: magic byte 0, schema registry id, body.
#: ``single-object``: C3 01, schema fingerprint, body.
WireFormat = Literal["confluent", "single-object"]


@dataclass(frozen=True, slots=True)
class Codec(Generic[R]):
    """A record type's serializer and deserializer, both in one wire format."""

    serializer: RecordSerializer[R]
    deserializer: RecordDeserializer[R]
    wire_format: WireFormat


def codec_for(
    settings: Settings,
    record_type: type[R],
    *,
    client: SchemaRegistryClient | None = None,
) -> Codec[R]:
    """The codec for ``record_type`` in the wire format the settings call for.

    With ``settings.schema_registry_url`` set, values use the Confluent wire
    format and the registry; unset, Avro single-object encoding.

    Args:
        settings: hoststream's settings.
        record_type: :class:`~schemas.records.MetricEvent`,
            :class:`~schemas.records.WindowAggregate` or
            :class:`~schemas.records.AlertEvent`.
        client: a registry client to share between codecs (one HTTP session and
            schema cache); default: a new one from the settings.

    Raises:
        ConfigurationError: the registry settings are invalid, or a client was
            given while no registry URL is configured.
    """
    if settings.schema_registry_url is None:
        if client is not None:
            raise ConfigurationError(
                "HOSTSTREAM_SCHEMA_REGISTRY_URL",
                "unset, yet a schema registry client was passed to codec_for",
            )
        return Codec(
            SingleObjectAvroSerializer(record_type),
            SingleObjectAvroDeserializer(record_type),
            "single-object",
        )
    registry = client if client is not None else registry_client_for(settings)
    assert registry is not None  # the URL is set, so registry_client_for built one
    return Codec(
        RegistryAvroSerializer(registry, record_type),
        RegistryAvroDeserializer(registry, record_type),
        "confluent",
    )


def serializer_for(settings: Settings, record_type: type[R]) -> RecordSerializer[R]:
    """A producer's serializer for ``record_type``, in the wire format the settings call for.

    The same bytes as :func:`codec_for`'s serializer, but the schema id is asked
    with :class:`~schemas._schema_ids.SchemaIdClient` over plain HTTP instead of
    confluent-kafka's registry client, which a producer does not need whole.

    Raises:
        ConfigurationError: the registry settings are invalid.
    """
    client = schema_id_client_for(settings)
    if client is None:
        return SingleObjectAvroSerializer(record_type)
    return RegistryAvroSerializer(client, record_type)

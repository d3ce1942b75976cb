"""Choosing a message's deserializer by its topic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.errors import InvalidRecordError
from hoststream.schemas import RecordDeserializer
from hoststream.sinks.base import Headers

__all__ = ["TopicDecoder"]


class TopicDecoder:
    """Decodes a value with the deserializer of the longest matching topic prefix.

    Args:
        routes: topic prefix (or full name) -> deserializer, e.g.
            ``{"metrics.agg.": aggregates, "metrics.": events}``.
    """

    def __init__(self, routes: Mapping[str, RecordDeserializer[Any]]) -> None:
        self._routes = sorted(routes.items(), key=lambda item: len(item[0]), reverse=True)

    def __call__(self, topic: str, value: bytes | None, headers: Headers) -> Any:
        """The decoded record.

        Raises:
            SerializationError: bad bytes or a schema that does not fit.
            InvalidRecordError: no deserializer for the topic, or a tombstone.
            SchemaRegistryUnavailableError: the registry did not answer; retry.
        """
        if value is None:
            raise InvalidRecordError(f"a message without a value (tombstone) on topic {topic!r}")
        for prefix, deserializer in self._routes:
            if topic.startswith(prefix):
                return deserializer(value, SerializationContext(topic, MessageField.VALUE, headers))
        raise InvalidRecordError(f"no decoder for topic {topic!r}")

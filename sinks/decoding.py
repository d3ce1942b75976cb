"""Choosing a message's deserializer by its topic."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.errors import InvalidRecordError, SerializationError
from hoststream.schemas import RecordDeserializer
from hoststream.sinks.base import Headers
from hoststream.topics import mirror_source

__all__ = ["TopicDecoder"]


Routes = Mapping[str, RecordDeserializer[Any]]

#: Topics whose route is remembered (a regex subscription may match many).
_MAX_TOPICS = 10_000


def _longest_first(routes: Routes) -> list[tuple[str, RecordDeserializer[Any]]]:
    return sorted(routes.items(), key=lambda item: len(item[0]), reverse=True)


class TopicDecoder:
    """Decodes a value with the deserializer of the longest matching topic prefix.

    Args:
        routes: topic prefix (or full name) -> deserializer, e.g.
            ``{"metrics.agg.": aggregates, "metrics.": events}``.
        mirrored: for a topic MirrorMaker 2 copied from another region
            (``<region>.<topic>``, which no route matches), the routes of that
            region's records: built once per region, matched against ``<topic>``.
            None: such topics have no decoder.
    """

    def __init__(self, routes: Routes, mirrored: Callable[[str], Routes] | None = None) -> None:
        self._routes = _longest_first(routes)
        self._mirrored = mirrored
        self._regions: dict[str, list[tuple[str, RecordDeserializer[Any]]]] = {}
        # Each topic's route, found once: every message asks.
        self._by_topic: dict[str, RecordDeserializer[Any]] = {}

    def __call__(self, topic: str, value: bytes | None, headers: Headers) -> Any:
        """The decoded record.

        Raises:
            SerializationError: bad bytes or a schema that does not fit.
            InvalidRecordError: no deserializer for the topic, or a tombstone.
            SchemaRegistryUnavailableError: the registry did not answer; retry.
        """
        if value is None:
            raise InvalidRecordError(f"a message without a value (tombstone) on topic {topic!r}")
        ctx = SerializationContext(topic, MessageField.VALUE, headers)
        found = self._by_topic.get(topic)
        if found is not None:
            return found(value, ctx)
        for prefix, deserializer in self._routes:
            if topic.startswith(prefix):
                if len(self._by_topic) < _MAX_TOPICS:
                    self._by_topic[topic] = deserializer
                return deserializer(value, ctx)
        source = mirror_source(topic) if self._mirrored is not None else None
        if source is not None and self._mirrored is not None:
            region, name = source
            routes = self._regions.get(region)
            if routes is None:
                routes = self._regions[region] = _longest_first(self._mirrored(region))
            for prefix, deserializer in routes:
                if name.startswith(prefix):
                    return deserializer(value, ctx)
        raise InvalidRecordError(f"no decoder for topic {topic!r}")

    def decode_many(self, messages: Sequence[tuple[str, bytes | None, Headers]]) -> list[Any]:
        """:meth:`__call__` for each ``(topic, value, headers)``; an exception in place of a record.

        A deserializer with a ``read_many`` (the VictoriaMetrics sink's event
        reader) is handed all its topics' values of the batch at once.

        Raises:
            SchemaRegistryUnavailableError: the registry did not answer; retry.
        """
        out: list[Any] = [None] * len(messages)
        together: dict[Any, list[int]] = {}
        for i, (topic, value, headers) in enumerate(messages):
            found = self._by_topic.get(topic)
            if found is not None and value is not None and hasattr(found, "read_many"):
                together.setdefault(found, []).append(i)
                continue
            try:
                out[i] = self(topic, value, headers)
            except (SerializationError, InvalidRecordError) as exc:
                out[i] = exc
        for reader, indexes in together.items():

            def context(j: int, indexes: list[int] = indexes) -> SerializationContext:
                topic, _value, headers = messages[indexes[j]]
                return SerializationContext(topic, MessageField.VALUE, headers)

            read = reader.read_many([messages[i][1] for i in indexes], context)
            for i, record in zip(indexes, read, strict=True):
                out[i] = record
        return out

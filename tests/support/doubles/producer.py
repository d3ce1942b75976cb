"""A TEST DOUBLE of confluent-kafka's Producer, for the producer's unit tests only.

:class:`RecordingProducer` keeps every message as confluent-kafka would have
been given it and delivers none by itself: a test calls a message's
``on_delivery``, or a subclass settles them. :func:`recording_publisher`
builds the real :class:`EventPublisher` over such a double.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.producers.publisher import EventPublisher, PublisherMetrics
from hoststream.schemas import MetricEvent, RecordSerializer, serializer_for

__all__ = ["RecordingProducer", "recording_publisher"]

P = TypeVar("P")


class RecordingProducer:
    """Test double of confluent_kafka.Producer: keeps what was produced."""

    def __init__(self) -> None:
        self.produced: list[dict[str, Any]] = []

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        partition: int = -1,
        callback: Any = None,
        on_delivery: Any = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        """confluent-kafka's signature: the publisher passes some arguments by position."""
        assert partition == -1  # the partitioner's choice
        message = {
            "topic": topic,
            "value": value,
            "key": key,
            "on_delivery": on_delivery or callback,
            "timestamp": timestamp,
            "headers": headers,
        }
        self.produced.append(message)

    def poll(self, _timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def recording_publisher(
    producer: P, serializer: RecordSerializer[MetricEvent] | None = None, **options: Any
) -> tuple[EventPublisher, P, CollectorRegistry]:
    """The real publisher over ``producer``, with its own metrics registry.

    Args:
        producer: the test double Kafka is replaced by.
        serializer: the events' serializer; by default the real single-object one.
        options: the publisher's keyword options (``event_timestamps`` ...).
    """
    registry = CollectorRegistry()
    settings = Settings(schema_registry_url=None)
    pub = EventPublisher(
        settings,
        serializer if serializer is not None else serializer_for(settings, MetricEvent),
        PublisherMetrics(registry),
        producer,  # type: ignore[arg-type]
        **options,
    )
    return pub, producer, registry

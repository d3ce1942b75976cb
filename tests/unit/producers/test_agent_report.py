"""The producer's end-of-run report counts what Kafka acknowledged and what it refused.

Kafka is replaced by a test double of confluent-kafka's Producer that serves
delivery reports on ``poll``/``flush``, refusing every other message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError

from hoststream.config import Settings
from hoststream.producers.agent import run_producer
from hoststream.producers.publisher import EventPublisher
from hoststream.schemas import MetricEvent, Sample, serializer_for


class HalfRefusingProducer:
    """Test double: acknowledges even-numbered messages and refuses odd ones on poll/flush."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., None], int]] = []
        self.count = 0
        self.timestamps: list[int] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.pending.append((kwargs["on_delivery"], self.count))
        self.timestamps.append(kwargs["timestamp"])
        self.count += 1

    def poll(self, _timeout: float) -> int:
        served, self.pending = self.pending, []
        for callback, number in served:
            error = KafkaError(KafkaError.INVALID_RECORD) if number % 2 else None
            callback(error, None)
        return len(served)

    def flush(self, _timeout: float) -> int:
        self.poll(0)
        return 0

    def __len__(self) -> int:
        return len(self.pending)


class OneHost:
    families = ("system",)

    def events(self, timestamp_ms: int, interval_ms: int) -> Iterable[MetricEvent]:
        yield MetricEvent("h1", "system", timestamp_ms, (Sample("node_load1", 1.0),), interval_ms)


def run(**publisher_options: Any) -> tuple[Any, HalfRefusingProducer]:
    settings = Settings(schema_registry_url=None)
    producer = HalfRefusingProducer()
    publisher = EventPublisher(
        settings,
        serializer_for(settings, MetricEvent),
        producer=producer,  # type: ignore[arg-type]
        **publisher_options,
    )
    report = run_producer(
        settings,
        OneHost(),
        publisher,
        threading.Event(),
        interval_s=10.0,
        speedup=1000.0,
        duration_s=0.1,
    )
    return report, producer


def test_refused_events_are_counted_as_failed_not_as_produced() -> None:
    report, producer = run()
    assert report.events == producer.count >= 2
    assert report.failed == producer.count // 2
    assert report.acknowledged == producer.count - producer.count // 2
    assert report.acknowledged_samples == report.acknowledged
    assert report.events_per_second == report.acknowledged / report.elapsed_seconds
    assert f"acknowledged {report.acknowledged} in" in report.summary()
    assert f"failed {report.failed}," in report.summary()


def test_messages_carry_the_event_instant_unless_told_to_stamp_them_when_produced() -> None:
    _, producer = run()
    assert all(stamp > 0 for stamp in producer.timestamps)
    _, producer = run(event_timestamps=False)
    assert set(producer.timestamps) == {0}  # 0: librdkafka stamps the produce time

"""AckedProducer's batching over a recording double of confluent-kafka's Producer."""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError

from hoststream.config import Settings
from hoststream.streams._producer import AckedProducer


class RecordingProducer:
    """Double: records what reaches librdkafka; ``room`` messages fit before the queue is full."""

    def __init__(self, room: int = 1_000_000) -> None:
        self.room = room
        self.sent: list[tuple[str, int | None, bytes, bytes | None, Any]] = []

    def produce(self, topic, value, key, partition=None, *, headers=None, on_delivery=None):
        self.sent.append((topic, partition, key, value, headers))

    def produce_batch(self, topic, messages, partition=None, on_delivery=None) -> int:
        taken = 0
        for message in messages:
            if taken < self.room:
                self.sent.append((topic, partition, message["key"], message["value"], None))
                taken += 1
            else:
                message["_error"] = KafkaError(KafkaError._QUEUE_FULL)
        self.room -= taken
        return taken

    def poll(self, _timeout: float) -> int:
        self.room = 1_000_000  # deliveries made room
        return 0

    def flush(self, _timeout: float) -> int:
        return 0


def producer_over(double: RecordingProducer) -> AckedProducer:
    producer = AckedProducer(Settings(schema_registry_url=None))
    producer._producer = double  # type: ignore[assignment]
    return producer


def test_tombstones_and_messages_with_headers_keep_their_place_among_batched_ones() -> None:
    double = RecordingProducer()
    producer = producer_over(double)
    producer.produce("log", b"a", b"1", partition=2)
    producer.produce("log", b"b", b"2", partition=3)
    producer.produce("log", b"a", None, partition=2)  # a tombstone of partition 2
    producer.produce("log", b"a", b"3", partition=2)
    producer.produce("agg", b"h", b"x")
    producer.produce("agg", b"h", b"y", [("traceparent", b"00-...")])
    producer.produce("agg", b"h", b"z")
    assert double.sent == [
        ("log", 2, b"a", b"1", None),
        ("log", 2, b"a", None, None),
        ("agg", None, b"h", b"x", None),
        ("agg", None, b"h", b"y", [("traceparent", b"00-...")]),
    ]
    asyncio.run(producer.acknowledged())  # hands over what is still queued
    assert double.sent[4:] == [
        ("log", 3, b"b", b"2", None),
        ("log", 2, b"a", b"3", None),
        ("agg", None, b"h", b"z", None),
    ]


def test_messages_a_full_queue_refused_are_produced_again_in_order() -> None:
    double = RecordingProducer(room=2)
    producer = producer_over(double)
    for n in range(5):
        producer.produce("log", b"k", str(n).encode(), partition=0)
    asyncio.run(producer.acknowledged())
    assert [value for _, _, _, value, _ in double.sent] == [b"0", b"1", b"2", b"3", b"4"]


class SlowAcks(RecordingProducer):
    """Double: every poll acknowledges one message; ``len`` counts those still unacknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.acked = 0

    def poll(self, _timeout: float) -> int:
        if self.acked < len(self.sent):
            self.acked += 1
        return super().poll(_timeout)

    def __len__(self) -> int:
        return len(self.sent) - self.acked


def test_settled_hands_over_everything_and_waits_only_down_to_the_bound() -> None:
    double = SlowAcks()
    producer = producer_over(double)
    for n in range(5):
        producer.produce("agg", b"h", str(n).encode())
    asyncio.run(producer.settled(2))
    assert len(double.sent) == 5  # nothing left queued in Python
    assert len(double) == 2  # three acknowledged, and no more waited for
    asyncio.run(producer.settled(2))
    assert double.acked == 3  # already within the bound: no wait

"""Window aggregates sent through librdkafka rather than Faust's producer.

A batch closes thousands of windows, one message each. Faust's producer (on
aiokafka) costs tens of microseconds of Python per message, more than
computing the window; confluent-kafka's costs about one. The worker stays a
Faust application: Faust consumes, keeps the table and commits; only the
aggregate messages take this path, and the processor still waits for their
acknowledgement before it writes the states that no longer hold them.

Messages are partitioned by key with murmur2, as Faust, aiokafka and the Java
client do, so a host's aggregates land where any of them would put them.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from confluent_kafka import KafkaError, Message, Producer

from hoststream.config import Settings
from hoststream.errors import StreamsError
from hoststream.kafka import producer_config

__all__ = ["AckedProducer"]

_POLL_S = 0.002


class AckedProducer:
    """Produces messages and waits, without blocking the event loop, until all are acknowledged."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        """
        Args:
            settings: Kafka connection and security.
            overrides: librdkafka settings on top of hoststream's producer settings.
        """
        config = producer_config(
            settings, **{"partitioner": "murmur2_random", "linger.ms": 5, **overrides}
        )
        self._producer = Producer(config)
        self._failures: list[str] = []

    @property
    def kafka_client(self) -> Producer:
        """The librdkafka producer (to give it a rotated SASL password)."""
        return self._producer

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(f"{message.topic()}: {error.str()}")

    def produce(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    headers=cast(list[tuple[str, str | bytes | None]] | None, headers),
                    on_delivery=self._delivered,
                )
                return
            except BufferError:  # the local queue is full: let deliveries make room
                self._producer.poll(0.05)

    async def acknowledged(self) -> None:
        """Return once every message produced so far is acknowledged.

        Raises:
            StreamsError: a message could not be written (after librdkafka's retries).
        """
        while self._producer.flush(0) > 0:
            await asyncio.sleep(_POLL_S)
        if self._failures:
            failures, self._failures = self._failures, []
            raise StreamsError(
                f"{len(failures)} window aggregate(s) could not be written, e.g. {failures[0]}"
            )

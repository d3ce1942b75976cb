"""Window aggregates and the window table's changelog sent through librdkafka.

A batch closes thousands of windows and changes hundreds of states, one
message each. Faust's producer (on aiokafka) costs tens of microseconds of
Python per message, more than computing the window; confluent-kafka's costs
about one. The worker stays a Faust application: Faust consumes, assigns
partitions, keeps the table and restores it from its changelog, and commits;
only the messages the worker writes take this path. The processor waits for
the aggregates' acknowledgement before it writes the states that no longer
hold them, and for the states' before Faust may commit the batch's offsets.

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
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        *,
        partition: int | None = None,
    ) -> None:
        """Queue one message; ``value`` None is a tombstone; ``partition`` None: by key."""
        kafka_headers = cast(list[tuple[str, str | bytes | None]] | None, headers)
        while True:
            try:
                # librdkafka takes no None for "the partitioner's choice", only its absence.
                if partition is None:
                    self._producer.produce(
                        topic, value, key, headers=kafka_headers, on_delivery=self._delivered
                    )
                else:
                    self._producer.produce(
                        topic,
                        value,
                        key,
                        partition,
                        headers=kafka_headers,
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
                f"{len(failures)} message(s) could not be written, e.g. {failures[0]}"
            )

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

Messages without headers are queued in Python and handed to librdkafka in
batches (``produce_batch``, one call per topic and partition), and librdkafka
reports only failed deliveries: a call and a delivery callback per message
cost more than the rest of sending. ``produce_batch`` in confluent-kafka 2.16
drops headers, ignores a message's own partition and loses tombstones, so a
message with headers or without a value is produced alone, after what was
queued before it for the same topic and partition, which keeps their order.
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
#: Messages queued in Python before they are handed to librdkafka anyway.
_BATCH = 10_000
_QUEUE_FULL = KafkaError._QUEUE_FULL  # librdkafka's code, as confluent-kafka names it


class AckedProducer:
    """Produces messages and waits, without blocking the event loop, until all are acknowledged."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        """
        Args:
            settings: Kafka connection and security.
            overrides: librdkafka settings on top of hoststream's producer settings.
        """
        config = producer_config(
            settings,
            **{
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "delivery.report.only.error": True,
                **overrides,
            },
        )
        self._producer = Producer(config)
        self._failures: list[str] = []
        # (topic, partition or None for the key's) -> messages not yet handed over
        self._queued: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
        self._queued_n = 0

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
        if value is not None and not headers:
            self._queued.setdefault((topic, partition), []).append({"key": key, "value": value})
            self._queued_n += 1
            if self._queued_n >= _BATCH:
                self._hand_over()
            return
        queued = self._queued.pop((topic, partition), None)
        if queued:
            self._queued_n -= len(queued)
            self._produce_batch(topic, partition, queued)
        self._produce_one(topic, key, value, headers, partition)

    def _produce_one(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        partition: int | None,
    ) -> None:
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

    def _hand_over(self) -> None:
        """Give librdkafka every message queued here."""
        queued, self._queued, self._queued_n = self._queued, {}, 0
        for (topic, partition), messages in queued.items():
            self._produce_batch(topic, partition, messages)

    def _produce_batch(
        self, topic: str, partition: int | None, messages: list[dict[str, Any]]
    ) -> None:
        while messages:
            try:
                if partition is None:
                    taken = self._producer.produce_batch(
                        topic, messages, on_delivery=self._delivered
                    )
                else:
                    taken = self._producer.produce_batch(
                        topic, messages, partition=partition, on_delivery=self._delivered
                    )
            except BufferError:
                taken = 0
            if taken == len(messages):
                return
            # A full queue refuses every message from the first it refused: retry
            # those in order once deliveries made room; any other error is final.
            retry = []
            for message in messages:
                error = message.pop("_error", None)
                if error is None:
                    continue
                if error.code() == _QUEUE_FULL:
                    retry.append(message)
                else:
                    self._failures.append(f"{topic}: {error.str()}")
            messages = retry
            if messages:
                self._producer.poll(0.05)

    async def settled(self, in_flight: int) -> None:
        """Return once at most ``in_flight`` produced messages are unacknowledged.

        Every queued message is handed to librdkafka first; a failed delivery
        is raised by the next :meth:`acknowledged`, not here.
        """
        self._hand_over()
        while len(self._producer) > in_flight:
            self._producer.poll(0)
            await asyncio.sleep(_POLL_S)

    async def acknowledged(self) -> None:
        """Return once every message produced so far is acknowledged.

        Raises:
            StreamsError: a message could not be written (after librdkafka's retries).
        """
        self._hand_over()
        while self._producer.flush(0) > 0:
            await asyncio.sleep(_POLL_S)
        if self._failures:
            failures, self._failures = self._failures, []
            raise StreamsError(
                f"{len(failures)} message(s) could not be written, e.g. {failures[0]}"
            )

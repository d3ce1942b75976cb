"""Sending a sink's rejected records to ``<source topic>.dlq``.

A rejected record is produced with its original key, value and headers plus
the ``hoststream.dlq.*`` headers of :mod:`hoststream.dead_letters`; the
consumer loop commits the source offset only after every dead-letter message
of the batch is acknowledged. The dead letter's ``traceparent`` names the
sink's batch span it is sent from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from hoststream.config import Settings
from hoststream.dead_letters import Rejection, dead_letter_headers
from hoststream.errors import SinkUnavailableError
from hoststream.kafka import TopicSpec, ensure_topics, producer_config
from hoststream.sinks.base import Headers, SinkRecord
from hoststream.topics import dead_letter_topic

__all__ = ["DeadLetterQueue", "ensure_dead_letter_topics"]

log = logging.getLogger(__name__)


def ensure_dead_letter_topics(settings: Settings, source_topics: Iterable[str]) -> list[str]:
    """Create the dead-letter topics of ``source_topics`` that do not exist; brokers never do."""
    return ensure_topics(
        settings,
        [
            TopicSpec(
                dead_letter_topic(topic),
                settings.topic_partitions,
                settings.topic_replication_factor,
            )
            for topic in source_topics
        ],
    )


class DeadLetterQueue:
    """Sends rejected records to their dead-letter topics and waits for the acknowledgements.

    Args:
        producer: an idempotent producer (see :func:`hoststream.kafka.producer_config`).
        sink: the sink's name, written into the ``hoststream.dlq.sink`` header.
        timeout_s: how long :meth:`send` waits for the acknowledgements.
        create_topic: makes sure a dead-letter topic exists; called once per
            topic before its first message (brokers do not auto-create).
    """

    def __init__(
        self,
        producer: Producer,
        sink: str,
        timeout_s: float = 30.0,
        create_topic: Callable[[str], object] | None = None,
    ) -> None:
        self._producer = producer
        self._sink = sink
        self._timeout_s = timeout_s
        self._create_topic = create_topic
        self._known_topics: set[str] = set()

    @property
    def kafka_client(self) -> Producer:
        """The librdkafka producer (to give it a rotated SASL password)."""
        return self._producer

    @classmethod
    def from_settings(cls, settings: Settings, sink: str) -> DeadLetterQueue:
        """A queue with its own producer built from ``settings``, creating topics as needed."""
        # Dead letters are rare and small: send at once rather than linger.
        producer = Producer(producer_config(settings, **{"linger.ms": 5}))

        def create(topic: str) -> None:
            ensure_topics(
                settings,
                [TopicSpec(topic, settings.topic_partitions, settings.topic_replication_factor)],
            )

        return cls(producer, sink, create_topic=create)

    def headers(self, rejection: Rejection[SinkRecord[Any]]) -> Headers:
        """The original headers, the ``hoststream.dlq.*`` ones, the current span's traceparent."""
        record = rejection.record
        return dead_letter_headers(record.headers, rejection, record, self._sink)

    def send(self, rejections: Sequence[Rejection[SinkRecord[Any]]]) -> None:
        """Produce every rejection and return once all are acknowledged.

        Raises:
            SinkUnavailableError: Kafka did not acknowledge them all in time;
                the caller retries (a retry may duplicate a dead letter, never
                lose one).
        """
        if not rejections:
            return
        failures: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err)

        for rejection in rejections:
            record = rejection.record
            self._ensure(dead_letter_topic(record.topic))
            while True:
                try:
                    self._producer.produce(
                        dead_letter_topic(record.topic),
                        key=record.key,
                        value=record.value,
                        headers=self.headers(rejection),
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    # The local queue is full: let deliveries drain it.
                    self._producer.poll(0.5)
        remaining = self._producer.flush(self._timeout_s)
        if remaining or failures:
            detail = failures[0].str() if failures else f"{remaining} still unacknowledged"
            raise SinkUnavailableError(
                f"the dead-letter topic did not acknowledge {len(rejections)} record(s): {detail}"
            )
        log.warning(
            "dead-lettered %d record(s), e.g. %s[%d]@%d: %s",
            len(rejections),
            rejections[0].record.topic,
            rejections[0].record.partition,
            rejections[0].record.offset,
            rejections[0].reason,
        )

    def _ensure(self, topic: str) -> None:
        if self._create_topic is None or topic in self._known_topics:
            return
        try:
            self._create_topic(topic)
        except KafkaException as exc:
            raise SinkUnavailableError(f"cannot create dead-letter topic {topic}: {exc}") from exc
        self._known_topics.add(topic)

    def close(self) -> None:
        self._producer.flush(self._timeout_s)

"""A TEST DOUBLE of confluent-kafka's AdminClient as it asks for partition ends.

It imitates what librdkafka 2.16 does around a broker restart, as measured
against the local stack's broker: while the broker is down, every
ListOffsets request fails; once it is back, every partition has a new
leader epoch, and a client that asked before the restart keeps sending the
epoch of its metadata cache and is answered FENCED_LEADER_EPOCH, request
after request, until a metadata request for the topic refreshes that cache.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition


@dataclass
class RestartingBrokerAdmin:
    """One broker whose partitions end at ``ends``; :meth:`stop` and :meth:`start` it."""

    ends: dict[tuple[str, int], int] = field(default_factory=dict)
    up: bool = True
    epoch: int = 0
    #: The leader epoch each topic's metadata was last read at, as the client caches it.
    cached_epoch: dict[str, int] = field(default_factory=dict)
    list_offsets_calls: int = 0
    metadata_requests: list[str | None] = field(default_factory=list)

    def stop(self) -> None:
        self.up = False

    def start(self) -> None:
        # A broker coming back leads its partitions under a new epoch.
        self.up = True
        self.epoch += 1

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> object:
        self.metadata_requests.append(topic)
        if not self.up:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down"))
        for name in {t for t, _ in self.ends} if topic is None else {topic}:
            self.cached_epoch[name] = self.epoch
        return object()

    def list_offsets(
        self, requests: dict[TopicPartition, Any], **_: Any
    ) -> dict[TopicPartition, Future[Any]]:
        self.list_offsets_calls += 1
        answers: dict[TopicPartition, Future[Any]] = {}
        for tp in requests:
            future: Future[Any] = Future()
            # The first request of a topic reads its metadata, as librdkafka does.
            cached = self.cached_epoch.setdefault(tp.topic, self.epoch)
            if not self.up:
                error = KafkaError(KafkaError._NOENT, "Failed to query partition leaders")
                future.set_exception(KafkaException(error))
            elif cached != self.epoch:
                error = KafkaError(KafkaError.FENCED_LEADER_EPOCH, "Leader epoch is older")
                future.set_exception(KafkaException(error))
            else:
                end = self.ends.get((tp.topic, tp.partition), 0)
                future.set_result(TopicPartition(tp.topic, tp.partition, end))
            answers[tp] = future
        return answers

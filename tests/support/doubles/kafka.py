"""In-memory doubles of Kafka clients and a sink, for unit tests only.

They imitate the few confluent-kafka behaviours the consumer loop relies on:
consume() honours pause(), rebalance callbacks run inside consume() and
close(), commit() records explicit offsets, flush() acknowledges deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from hoststream.dead_letters import Rejection
from hoststream.errors import InvalidRecordError, SchemaRegistryUnavailableError, SerializationError
from hoststream.sinks.base import BatchingSink, SinkRecord
from tests.support.doubles.clock import FakeClock


class FakeConsumer:
    """A single-member group over in-memory partitions."""

    def __init__(self, clock: FakeClock, partitions: dict[tuple[str, int], list[Message]]) -> None:
        self.clock = clock
        self.logs = partitions
        self.positions = {tp: 0 for tp in partitions}
        self.assigned: set[tuple[str, int]] = set()
        self.paused: set[tuple[str, int]] = set()
        self.commits: list[dict[tuple[str, int], int]] = []
        self.committed: dict[tuple[str, int], int] = {}
        self.callbacks: dict[str, object] = {}
        self.pending_assign: list[tuple[str, int]] | None = None
        self.pending_revoke: list[tuple[str, int]] | None = None
        self.closed = False
        self.consume_calls = 0
        #: The next this many commits are refused as a rebalance refuses them.
        self.refuse_commits = 0

    # -- the API the loop uses
    def subscribe(self, topics, on_assign=None, on_revoke=None, on_lost=None) -> None:
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self.pending_assign = sorted(tp for tp in self.logs if tp[0] in topics)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        self.consume_calls += 1
        self._rebalance()
        out: list[Message] = []
        for tp in sorted(self.assigned - self.paused):
            log = self.logs[tp]
            while self.positions[tp] < len(log) and len(out) < num_messages:
                out.append(log[self.positions[tp]])
                self.positions[tp] += 1
        if not out:
            self.clock.now += max(timeout, 0.0)
        return out

    def _rebalance(self) -> None:
        if self.pending_revoke is not None:
            revoke, self.pending_revoke = self.pending_revoke, None
            self.callbacks["revoke"](self, [TopicPartition(t, p) for t, p in revoke])
        if self.pending_assign is not None:
            assign, self.pending_assign = self.pending_assign, None
            self.callbacks["assign"](self, [TopicPartition(t, p) for t, p in assign])

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self.assigned.add(key)
            self.positions[key] = self.committed.get(key, 0)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.assigned.discard((tp.topic, tp.partition))
            self.paused.discard((tp.topic, tp.partition))

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True):
        assert asynchronous is False
        if self.refuse_commits:
            self.refuse_commits -= 1
            raise KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION))
        batch = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        for key in batch:
            assert key in self.assigned, f"committed {key} which is not assigned"
        self.commits.append(batch)
        self.committed.update(batch)
        return offsets

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False, timeout=None):
        return 0, len(self.logs[(tp.topic, tp.partition)])

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions[(tp.topic, tp.partition)])
            for tp in partitions
        ]

    def close(self) -> None:
        if self.assigned:
            self.callbacks["revoke"](self, [TopicPartition(t, p) for t, p in sorted(self.assigned)])
        self.closed = True

    # -- test controls
    def revoke(self, *partitions: tuple[str, int]) -> None:
        self.pending_revoke = list(partitions)


class FakeProducer:
    """Acknowledges every message at flush(), unless told to fail the next ``fail`` flushes."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.queued: list[tuple[dict, object]] = []
        self.fail = 0

    def produce(self, topic, key=None, value=None, headers=None, on_delivery=None) -> None:
        self.queued.append(
            ({"topic": topic, "key": key, "value": value, "headers": headers}, on_delivery)
        )

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        queued, self.queued = self.queued, []
        for message, callback in queued:
            if self.fail:
                callback(KafkaError(KafkaError._MSG_TIMED_OUT), None)
            else:
                self.sent.append(message)
                callback(None, None)
        if self.fail:
            self.fail -= 1
        return 0


class RecordingSink(BatchingSink[int]):
    """Stores ints; fails the next ``failures`` writes with the given exception; refuses odd 13s."""

    name = "recording"

    def __init__(self) -> None:
        self.stored: list[int] = []
        self.writes: list[list[int]] = []
        self.failures: list[Exception] = []
        self.closed = False

    def check(self, value: int) -> None:
        if value < 0:
            raise InvalidRecordError(f"negative value {value}")

    def write(self, batch: Sequence[SinkRecord[int]]) -> Sequence[Rejection]:
        self.writes.append([r.decoded for r in batch])
        if self.failures:
            raise self.failures.pop(0)
        refused = [Rejection(r, "thirteen is unlucky") for r in batch if r.decoded == 13]
        self.stored.extend(r.decoded for r in batch if r.decoded != 13)
        return refused

    def close(self) -> None:
        self.closed = True


class IntDecoder:
    """b"<int>" -> int; b"registry-down" raises the registry error ``down`` times."""

    def __init__(self) -> None:
        self.down = 0

    def __call__(self, topic: str, value: bytes | None, headers) -> int:
        if value == b"registry-down" and self.down:
            self.down -= 1
            raise SchemaRegistryUnavailableError("registry down")
        if value == b"registry-down":
            return 7
        try:
            return int(value or b"")
        except ValueError as exc:
            raise SerializationError(f"not an int: {value!r}") from exc


def message(topic: str, partition: int, offset: int, value: bytes, key: bytes = b"k") -> Message:
    return Message(
        topic=topic, partition=partition, offset=offset, key=key, value=value, headers=[("h", b"1")]
    )


def partition_log(topic: str, partition: int, values: Sequence[bytes]) -> list[Message]:
    return [message(topic, partition, i, v) for i, v in enumerate(values)]

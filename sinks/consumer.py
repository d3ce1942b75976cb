"""The consumer loop every sink runs in: poll, batch, decode, write, dead-letter, commit.

Delivery is at least once. A batch's offsets are committed only after the
sink stored it and every rejected record of it was acknowledged by its
dead-letter topic; a crash in between hands the same records to the next
owner of the partitions, which writes them again (sinks are idempotent).

While the destination is down, the loop pauses every assigned partition and
holds on to the one batch it has, retrying it with exponential backoff and
jitter; it keeps polling so the group membership stays alive, and resumes by
itself once a write succeeds. Memory stays bounded by the batch it holds
(with a write-ahead sink's batches that were in flight folded into it) plus
what librdkafka had already fetched.

A sink whose ``write_ahead`` is true has each batch written on a writer
thread while the loop consumes and decodes the next one (a write that mostly
waits for the destination then costs the loop little). Up to the sink's
``batches_in_flight`` batches are written at once; they are settled (dead
letters, then commit) strictly in the order they were read, so commits stay
in order and come only after their write. If one fails, every batch after it
is taken back unsettled and written again with it (writes are idempotent);
while the destination is down the loop writes synchronously, as for any
other sink.

Tracing: every attempt at a batch (write, dead letters, commit) runs inside a
``write <sink>`` span linked to the spans its messages' ``traceparent`` names
(:func:`hoststream.tracing.batch_span`); a failed attempt's span carries the
error, and dead letters and log lines of the attempt carry the span's ids.
With tracing off there is no span and no header is read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from hoststream.dead_letters import Rejection
from hoststream.errors import (
    InvalidRecordError,
    SchemaRegistryUnavailableError,
    SerializationError,
    SinkBackpressureError,
    SinkUnavailableError,
)
from hoststream.kafka import access_error
from hoststream.schemas.validation import Validator, Violation
from hoststream.sinks.base import BatchingSink, Headers, SinkRecord
from hoststream.sinks.dlq import DeadLetterQueue
from hoststream.sinks.metrics import SinkMetrics
from hoststream.sinks.retry import Backoff
from hoststream.tracing import batch_span, open_batch_span, using_span

__all__ = ["BatchPolicy", "Decoder", "SinkConsumer", "write_span_name"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``(topic, value, headers) -> record``; raises SerializationError or
#: InvalidRecordError for a record that can never be decoded, and
#: SchemaRegistryUnavailableError when decoding should be retried.
Decoder = Callable[[str, bytes | None, Headers], T]

_Partition = tuple[str, int]

#: The longest poll while the rest of a backlog is read (see ``_caught_up``).
_CATCH_UP_POLL_S = 0.02
#: How often offsets a rebalance refused are committed again when no batch carries them.
_REFUSED_RETRY_S = 1.0

#: In place of a record decoded with the batch: decode the message alone.
_UNDECODED: Any = object()


def write_span_name(sink: str) -> str:
    """A sink's batch span: ``write victoriametrics``, ``write sql``, ``write alerts``."""
    return f"write {sink}"


# Commit failures during or after a rebalance. The offsets are kept and
# committed with the next batch's, or on revoke while the partitions are still
# ours (cooperative rebalancing allows it); only if those fail too does the
# partitions' new owner re-read from the last commit and rewrite, which
# idempotent sinks allow.
_LOST_OWNERSHIP = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._STATE,
    }
)


@dataclass(frozen=True)
class BatchPolicy:
    """When a batch is written: whichever limit is reached first.

    Args:
        max_records: records per batch.
        max_bytes: bytes of message values per batch.
        max_delay_s: age of the batch's first record.
    """

    max_records: int = 5000
    max_bytes: int = 16 * 1024 * 1024
    max_delay_s: float = 1.0


@dataclass(slots=True)
class _Pending(Generic[T]):
    """A consumed message on its way through decode, write, dead-letter and commit."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    record: SinkRecord[T] | None = None
    rejection: Rejection[SinkRecord[Any]] | None = None

    @property
    def tp(self) -> _Partition:
        return (self.topic, self.partition)


@dataclass
class _Batch(Generic[T]):
    """The records of the current batch and how far the batch got."""

    items: list[_Pending[T]] = field(default_factory=list)
    size_bytes: int = 0
    started_at: float = 0.0
    written: bool = False  # the sink stored it: a retry must not write it again
    rejections: list[Rejection[SinkRecord[Any]]] = field(default_factory=list)
    dead_lettered: bool = False

    def drop(self, partitions: set[_Partition]) -> int:
        """Forget the records of ``partitions``; their next owner reads them again."""
        before = len(self.items)
        self.items = [p for p in self.items if p.tp not in partitions]
        self.rejections = [
            r for r in self.rejections if (r.record.topic, r.record.partition) not in partitions
        ]
        self.size_bytes = sum(len(p.value or b"") for p in self.items)
        return before - len(self.items)


@dataclass
class _InFlight(Generic[T]):
    """A batch being written on the writer thread, and its valid records."""

    batch: _Batch[T]
    valid: list[SinkRecord[T]]
    future: Future[Sequence[Rejection[SinkRecord[Any]]]]
    #: The batch's one span: its write on the writer thread, its dead letters and commit here.
    span: Span | None


class SinkConsumer(Generic[T]):
    """Runs one sink over a Kafka consumer group.

    Args:
        consumer: a confluent-kafka consumer from
            :func:`hoststream.kafka.consumer_config` (no auto commit, no
            automatic offset store), not yet subscribed.
        topics: the topics to subscribe to.
        sink: where records are stored.
        decoder: turns a message value into the record ``sink`` takes.
        dead_letters: where records that can never be stored go.
        metrics: the sink's Prometheus metrics.
        policy: batch size and time limits.
        backoff: delays between retries while the destination is down.
        poll_timeout_s: the longest a single poll blocks.
        shutdown_timeout_s: how long stopping may keep retrying the last batch.
        lag_interval_s: how often the consumer-lag gauge is refreshed.
        clock: monotonic seconds; tests pass a fake one.
        sleep: waits between retries during shutdown; tests pass a fake one.
        validator: the validation contract every decoded record must meet on
            its topic (:mod:`hoststream.schemas.validation`); one that breaks
            it is dead-lettered with the rule as its error class. None: only
            the sink's own :meth:`~sinks.base.BatchingSink.check`.
    """

    def __init__(
        self,
        consumer: Consumer,
        topics: Sequence[str],
        *,
        sink: BatchingSink[T],
        decoder: Decoder[T],
        dead_letters: DeadLetterQueue,
        metrics: SinkMetrics,
        policy: BatchPolicy | None = None,
        backoff: Backoff | None = None,
        poll_timeout_s: float = 0.25,
        shutdown_timeout_s: float = 30.0,
        lag_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        validator: Validator | None = None,
    ) -> None:
        self._consumer = consumer
        self._validator = validator
        self._topics = list(topics)
        self._sink = sink
        self._decode = decoder
        #: A decoder may decode a batch's values at once (``decode_many``:
        #: a record, or the exception decoding raised, per message).
        self._decode_many: (
            Callable[[list[tuple[str, bytes | None, Headers]]], Sequence[Any]] | None
        ) = getattr(decoder, "decode_many", None)
        self._dlq = dead_letters
        self._metrics = metrics
        self._policy = policy or BatchPolicy()
        self._backoff = backoff or Backoff()
        self._poll_timeout_s = poll_timeout_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._lag_interval_s = lag_interval_s
        self._clock = clock
        self._sleep = sleep
        self._batch: _Batch[T] = _Batch()
        # Messages that arrive while a written batch awaits its commit (a
        # paused partition can still deliver what librdkafka had fetched).
        self._backlog: list[_Pending[T]] = []
        self._assigned: set[_Partition] = set()
        # Whether the last batch written was full: then the rest of a backlog
        # is written as soon as every partition is read to its end, not after
        # waiting out the batch's delay for records that are not there.
        self._behind = False
        self._committed: dict[_Partition, int] = {}
        # Offsets of written records whose commit a rebalance refused.
        self._refused: dict[_Partition, int] = {}
        self._refused_retry_at = 0.0
        self._paused = False
        self._failed = False
        self._retry_at = 0.0
        self._lag_at = 0.0
        # Write-ahead sinks: the batches being written while the next one
        # fills, oldest first.
        self._inflight: deque[_InFlight[T]] = deque()
        self._writer: ThreadPoolExecutor | None = None  # started by the first write ahead

    # -- public -------------------------------------------------------------

    @property
    def kafka_clients(self) -> tuple[Consumer, Producer]:
        """The librdkafka consumer and dead-letter producer (to give them a rotated password)."""
        return (self._consumer, self._dlq.kafka_client)

    @property
    def paused(self) -> bool:
        """Whether the partitions are paused because the destination is down."""
        return self._paused

    @property
    def sink(self) -> BatchingSink[T]:
        """The destination this loop writes to."""
        return self._sink

    @property
    def buffered(self) -> int:
        """Records consumed but not yet committed."""
        inflight = sum(len(f.batch.items) for f in self._inflight)
        return len(self._batch.items) + len(self._backlog) + inflight

    def subscribe(self) -> None:
        """Join the group; :meth:`run` calls this itself."""
        self._consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then write and commit the last batch and close."""
        self.subscribe()
        try:
            while not stop.is_set():
                self.step()
            self.drain()
        finally:
            self.close()

    def step(self) -> None:
        """One turn of the loop: poll once, then write the batch if it is due."""
        now = self._clock()
        if self._paused:
            if now >= self._retry_at:
                self._try_flush()
            # Polling while paused serves rebalances and keeps the membership
            # alive; paused partitions deliver nothing new.
            self._accept(self._consumer.consume(self._policy.max_records, self._poll_timeout_s))
        else:
            room = max(1, self._policy.max_records - len(self._batch.items))
            timeout = self._poll_timeout_s
            if self._batch.items:
                due = self._batch.started_at + self._policy.max_delay_s - now
                timeout = max(0.0, min(timeout, due))
            if self._behind or self._inflight:
                # librdkafka hands over a batch once it holds ``room`` messages
                # or the timeout passed: while catching up, look often whether
                # the backlog's end is reached (its last messages are not kept
                # waiting for a full batch), and commit a finished write soon.
                timeout = min(timeout, _CATCH_UP_POLL_S)
            messages = self._consumer.consume(room, timeout)
            if not messages and not self._batch.items:
                self._behind = False  # nothing held and nothing came: caught up
            self._accept(messages)
            if self._inflight and self._inflight[0].future.done():
                # Commit finished writes now, not only when the next batch is due.
                self._try_in(self._settle_finished, None)
            if self._refused and not self._batch.items and now >= self._refused_retry_at:
                # Nothing new to commit them with: try again on their own.
                self._refused_retry_at = now + _REFUSED_RETRY_S
                self._try_in(self._commit_refused, None)
            if self._batch_due() and not self._paused:
                if self._sink.write_ahead:
                    # The write's span is opened on the writer thread.
                    self._try_in(self._write_ahead, None)
                else:
                    self._try_flush()
        if self._clock() >= self._lag_at:
            self._update_lag()

    def drain(self) -> bool:
        """Write and commit the current batch, retrying until the shutdown timeout.

        Returns whether nothing is left uncommitted.
        """
        deadline = self._clock() + self._shutdown_timeout_s
        while self._batch.items or self._inflight:
            if self._try_flush():
                continue  # what arrived meanwhile became the next batch
            wait = min(self._retry_at, deadline) - self._clock()
            if self._clock() >= deadline:
                log.error(
                    "%s: giving up on %d uncommitted record(s) at shutdown; "
                    "they will be read again",
                    self._sink.name,
                    len(self._batch.items),
                )
                return False
            self._sleep(max(0.0, wait))
        return True

    def close(self) -> None:
        """Leave the group (revoking, hence committing what was written) and release clients."""
        try:
            self._consumer.close()
        finally:
            try:
                self._dlq.close()
            finally:
                try:
                    if self._writer is not None:
                        # A write still running must end before its client is closed.
                        self._writer.shutdown(wait=True)
                finally:
                    self._sink.close()

    # -- polling ------------------------------------------------------------

    def _accept(self, messages: Iterable[Message]) -> None:
        for message in messages:
            error = message.error()
            if error is not None:
                refused = access_error(error, f"sink {self._sink.name}", "read its topics")
                if refused is not None:
                    # A missing ACL never heals by itself: stop with one line, do not spin.
                    raise refused
                if error.fatal():
                    raise KafkaException(error)
                # Transient broker or partition errors: librdkafka recovers by itself.
                log.warning("%s: consumer error: %s", self._sink.name, error.str())
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:
                continue
            headers = _headers(message.headers())
            item: _Pending[T] = _Pending(
                topic, partition, offset, message.key(), message.value(), headers
            )
            if self._batch.written:
                # The batch is stored and only its dead letters or commit are
                # outstanding: a newcomer must not be committed unwritten.
                self._backlog.append(item)
            else:
                self._add(item)

    def _add(self, item: _Pending[T]) -> None:
        if not self._batch.items:
            self._batch.started_at = self._clock()
        self._batch.items.append(item)
        self._batch.size_bytes += len(item.value or b"")
        if item.rejection is not None:  # decoded already, while waiting in the backlog
            self._batch.rejections.append(item.rejection)

    def _batch_due(self) -> bool:
        batch = self._batch
        if not batch.items:
            return False
        if len(batch.items) >= self._policy.max_records or (
            batch.size_bytes >= self._policy.max_bytes
        ):
            self._behind = True  # more may be waiting: a backlog
            return True
        if self._clock() - batch.started_at >= self._policy.max_delay_s or (
            self._behind and self._caught_up()
        ):
            self._behind = False
            return True
        return False

    def _caught_up(self) -> bool:
        """Whether every assigned partition was read to the end its last fetch saw."""
        partitions = self._current_assignment()
        if not partitions:
            return False
        try:
            positions = self._consumer.position(partitions)
            for tp in positions:
                # librdkafka's own figure from its last fetch: no request.
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high is None or high < 0 or tp.offset < high:
                    return False
        except KafkaException:
            return False
        return True

    # -- writing ------------------------------------------------------------

    def _span(self) -> AbstractContextManager[Span | None]:
        """The span of one attempt at the current batch."""
        return batch_span(
            write_span_name(self._sink.name),
            (item.headers for item in self._batch.items),
            attributes={"hoststream.sink": self._sink.name},
        )

    def _try_flush(self) -> bool:
        """Write, dead-letter and commit the batch; on a transient failure pause and back off."""
        # The span covers the failure's handling too, so its log line names it.
        with self._span() as span:
            return self._try_in(self._flush, span)

    def _try_in(self, attempt: Callable[[], None], span: Span | None) -> bool:
        try:
            attempt()
        except SinkUnavailableError as exc:
            if span is not None:
                # Handled here, so the span would not see it: mark the attempt failed.
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            self._metrics.retried()
            at_least = exc.retry_after if isinstance(exc, SinkBackpressureError) else 0.0
            delay = self._backoff.next_delay(at_least)
            self._retry_at = self._clock() + delay
            if not self._paused:
                self._pause(self._current_assignment())
                self._paused = True
                self._metrics.paused(True)
            log.warning(
                "%s: %s; %d record(s) held, retry %d in %.1fs",
                self._sink.name,
                exc,
                len(self._batch.items),
                self._backoff.attempts,
                delay,
            )
            return False
        if self._backoff.attempts:
            log.info("%s: the destination is back; resuming", self._sink.name)
        self._backoff.reset()
        if self._paused:
            self._resume(self._current_assignment())
            self._paused = False
            self._metrics.paused(False)
        return True

    def _flush(self) -> None:
        self._settle()
        batch = self._batch
        if not batch.items:
            return
        if not batch.written:
            valid = self._decode_batch(batch)
            try:
                refused = self._write(valid)
            except SinkUnavailableError:
                raise
            except BaseException:
                # Fatal or a bug: nothing more may be written or committed.
                self._failed = True
                raise
            self._stored(batch, len(valid), refused)
        self._finish(batch)

    def _write(self, valid: list[SinkRecord[T]]) -> Sequence[Rejection[SinkRecord[Any]]]:
        started = self._clock()
        try:
            return self._sink.write(valid) if valid else ()
        finally:
            self._metrics.write_seconds(self._clock() - started)

    def _stored(
        self, batch: _Batch[T], valid: int, refused: Sequence[Rejection[SinkRecord[Any]]]
    ) -> None:
        batch.rejections.extend(refused)
        batch.written = True
        self._metrics.written(valid - len(refused))
        span = trace.get_current_span()  # the attempt's span; not recording when off
        if span.is_recording():
            span.set_attributes(
                {
                    "hoststream.records.written": valid - len(refused),
                    "hoststream.records.rejected": len(batch.rejections),
                }
            )

    def _finish(self, batch: _Batch[T]) -> None:
        """Dead-letter and commit the written ``batch`` (the current one)."""
        if batch.rejections and not batch.dead_lettered:
            self._dlq.send(batch.rejections)
            batch.dead_lettered = True
            for rejection in batch.rejections:
                self._metrics.dead_lettered(rejection.error_class)
        self._commit(batch.items)
        self._batch = _Batch()
        backlog, self._backlog = self._backlog, []
        for item in backlog:
            self._add(item)

    # -- writing ahead --------------------------------------------------------

    def _write_ahead(self) -> None:
        """Decode the batch, settle the oldest in flight if it takes a writer, then send
        this one off to be written."""
        depth = max(1, self._sink.batches_in_flight)
        if self._writer is None:
            self._writer = ThreadPoolExecutor(depth, thread_name_prefix=f"{self._sink.name}-write")
        # Decoding while the previous batches are still on their way is the point.
        self._decode_batch(self._batch)
        # Committing an earlier batch carries these records over into a new
        # batch (they are decoded: this second pass only collects them).
        self._settle(keep=depth - 1)
        batch = self._batch
        valid = self._decode_batch(batch)
        self._batch = _Batch()
        span = open_batch_span(
            write_span_name(self._sink.name),
            (item.headers for item in batch.items),
            attributes={"hoststream.sink": self._sink.name},
        )
        future = self._writer.submit(self._write_in_span, batch, valid, span)
        self._inflight.append(_InFlight(batch, valid, future, span))

    def _write_in_span(
        self, batch: _Batch[T], valid: list[SinkRecord[T]], span: Span | None
    ) -> Sequence[Rejection[SinkRecord[Any]]]:
        # Current here for the write; ended by _settle once dead letters and commit are done.
        with using_span(span, end=False):
            refused = self._write(valid)
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attributes(
                    {
                        "hoststream.records.written": len(valid) - len(refused),
                        "hoststream.records.rejected": len(batch.rejections) + len(refused),
                    }
                )
            return refused

    def _settle(self, keep: int = 0) -> None:
        """Settle the batches in flight, oldest first, until at most ``keep`` are left."""
        while len(self._inflight) > keep:
            self._settle_oldest()

    def _settle_finished(self) -> None:
        """Settle the batches in flight whose writes are done, up to the first still running."""
        while self._inflight and self._inflight[0].future.done():
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        """Wait for the oldest batch in flight, then dead-letter and commit it.

        If its write failed, it becomes the current batch again, ahead of the
        batches in flight after it and the records consumed meanwhile, and the
        failure is raised: the usual retries take over. If it was written but
        its dead letters or commit failed, it becomes the current batch
        (written) and what came since waits in the backlog; it is finished
        before any later batch is settled.
        """
        if self._batch.written:
            self._finish(self._batch)
        inflight = self._inflight.popleft()
        wait([inflight.future])
        # The batch's span again: a failed write marks it, and its dead letters
        # and log lines carry its ids.
        with using_span(inflight.span, end=True):
            self._settle_written(inflight)

    def _settle_written(self, inflight: _InFlight[T]) -> None:
        batch, newer = inflight.batch, self._batch
        try:
            refused = inflight.future.result()
        except SinkUnavailableError:
            # Written again as one batch with the batches after it (their
            # writes' outcome set aside: they were not committed) and the
            # newer records, all already decoded.
            later = list(self._inflight)
            self._inflight.clear()
            wait([f.future for f in later])
            for taken_back in [*(f.batch for f in later), newer]:
                batch.items += taken_back.items
                batch.size_bytes += taken_back.size_bytes
                batch.rejections += taken_back.rejections
            for f in later:
                if f.span is not None:
                    f.span.end()
            self._batch = batch
            raise
        except BaseException:
            self._failed = True
            raise
        batch.rejections.extend(refused)
        batch.written = True
        self._metrics.written(len(inflight.valid) - len(refused))
        self._batch = batch
        self._backlog = [*newer.items, *self._backlog]
        self._finish(batch)
        if newer.items:
            self._batch.started_at = newer.started_at  # its age still counts

    def _decode_batch(self, batch: _Batch[T]) -> list[SinkRecord[T]]:
        valid: list[SinkRecord[T]] = []
        # One reading of the clock judges the whole batch's timestamps.
        now_ms = self._validator.now_ms() if self._validator is not None else 0
        todo = [item for item in batch.items if item.record is None and item.rejection is None]
        decoded: Sequence[Any] | None = None
        if todo and self._decode_many is not None:
            try:
                decoded = self._decode_many([(i.topic, i.value, i.headers) for i in todo])
            except SchemaRegistryUnavailableError as exc:
                raise SinkUnavailableError(str(exc)) from exc
        for n, item in enumerate(todo):
            self._decode_one(item, now_ms, _UNDECODED if decoded is None else decoded[n])
            if item.rejection is not None:
                batch.rejections.append(item.rejection)
        for item in batch.items:
            if item.record is not None:
                valid.append(item.record)
        return valid

    def _decode_one(self, item: _Pending[T], now_ms: int, decoded: Any) -> None:
        try:
            if decoded is _UNDECODED:
                value = self._decode(item.topic, item.value, item.headers)
            elif isinstance(decoded, Exception):
                raise decoded
            else:
                value = decoded
            record = SinkRecord(
                item.topic, item.partition, item.offset, item.key, item.value, value, item.headers
            )
            violation = (
                self._validator.check(value, item.topic, now_ms)
                if self._validator is not None
                else None
            )
            if violation is None:
                self._sink.check(value)
        except SchemaRegistryUnavailableError as exc:
            raise SinkUnavailableError(str(exc)) from exc
        except (SerializationError, InvalidRecordError) as exc:
            violation = Violation(type(exc).__name__, str(exc))
        if violation is not None:
            raw: SinkRecord[None] = SinkRecord(
                item.topic, item.partition, item.offset, item.key, item.value, None, item.headers
            )
            item.rejection = Rejection(raw, violation.reason, violation.error)
            return
        item.record = record

    # -- committing ---------------------------------------------------------

    def _commit(self, items: Sequence[_Pending[T]]) -> None:
        next_offsets: dict[_Partition, int] = {}
        for item in items:
            next_offsets[item.tp] = max(next_offsets.get(item.tp, 0), item.offset + 1)
        self._commit_offsets(next_offsets)

    def _commit_refused(self) -> None:
        """Commit the offsets a rebalance refused, alone."""
        if self._refused:
            self._commit_offsets({})

    def _commit_offsets(self, next_offsets: dict[_Partition, int]) -> None:
        for tp, offset in self._refused.items():  # they go with these
            next_offsets[tp] = max(next_offsets.get(tp, 0), offset)
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() in _LOST_OWNERSHIP:
                log.warning(
                    "%s: commit refused (%s); committed again with the next batch or "
                    "when the partitions are revoked",
                    self._sink.name,
                    error.str(),
                )
                self._refused = next_offsets
                return
            raise SinkUnavailableError(f"committing offsets failed: {error.str()}") from exc
        self._refused = {}
        self._committed.update(next_offsets)

    # -- rebalancing (called from inside consume) ---------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        if self._paused:
            # Newly assigned partitions would otherwise flow into a batch that
            # cannot be written.
            self._pause(partitions)
        else:
            # librdkafka keeps a partition's pause across losing and regaining it:
            # one paused during an outage and lost meanwhile (its cluster gone
            # too) would deliver nothing ever after.
            self._resume(partitions)
        self._lag_at = 0.0

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        holding = bool(self._inflight) or any(item.tp in revoked for item in self._batch.items)
        if holding and not self._paused and not self._failed:
            # Store and commit what we hold for them while they are still ours;
            # one attempt only, a rebalance must not wait for an outage.
            try:
                with self._span():
                    self._flush()
            # An exception must not escape into librdkafka's rebalance callback:
            # the records are dropped below and read again by the next owner.
            except Exception as exc:
                log.warning("%s: could not flush on revoke: %s", self._sink.name, exc)
        if not revoked.isdisjoint(self._refused) and not self._failed:
            # Written, their commit refused by an earlier rebalance: the last
            # chance before another member reads them again.
            try:
                self._commit_refused()
            except Exception as exc:
                log.warning("%s: could not commit on revoke: %s", self._sink.name, exc)
        self._forget(revoked, "revoked")
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may already own them: committing now could go backwards.
        self._forget({(tp.topic, tp.partition) for tp in partitions}, "lost")
        consumer.incremental_unassign(partitions)

    def _forget(self, partitions: set[_Partition], why: str) -> None:
        dropped = self._batch.drop(partitions)
        for inflight in self._inflight:
            # Its write goes on (harmless: writes are idempotent), but it must
            # not commit offsets of partitions that are no longer ours.
            dropped += inflight.batch.drop(partitions)
        kept = [item for item in self._backlog if item.tp not in partitions]
        dropped += len(self._backlog) - len(kept)
        self._backlog = kept
        if dropped:
            log.info(
                "%s: dropped %d uncommitted record(s) of %s partitions",
                self._sink.name,
                dropped,
                why,
            )
        if not self._batch.items:
            self._batch = _Batch()
        self._assigned -= partitions
        for topic, partition in partitions:
            self._committed.pop((topic, partition), None)
            self._refused.pop((topic, partition), None)
            self._metrics.forget_partition(topic, partition)

    # -- helpers ------------------------------------------------------------

    def _current_assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self._assigned)]

    def _pause(self, partitions: list[TopicPartition]) -> None:
        if partitions:
            self._consumer.pause(partitions)

    def _resume(self, partitions: list[TopicPartition]) -> None:
        if partitions:
            self._consumer.resume(partitions)

    def _update_lag(self) -> None:
        self._lag_at = self._clock() + self._lag_interval_s
        for topic, partition in sorted(self._assigned):
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            committed = self._committed.get((topic, partition))
            if committed is None:
                # Nothing committed this session yet: count from what was consumed.
                [position] = self._consumer.position([TopicPartition(topic, partition)])
                committed = position.offset
            if high is None or high < 0 or committed < 0:
                continue  # nothing fetched yet: unknown, not zero
            self._metrics.lag(topic, partition, max(0, high - committed))


def _headers(raw: Any) -> Headers:
    if not raw:
        return []
    if type(raw) is list:  # confluent-kafka's own, new for every call: no copy
        return raw
    return list(raw.items() if isinstance(raw, dict) else raw)

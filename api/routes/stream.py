"""Server-sent events of new window aggregates, read straight from Kafka.

The consumer commits nothing and joins no group: it is assigned every
``metrics.agg.*`` partition at its end when the client connects, so a web
client sees each aggregate produced after it subscribed, as a Kafka consumer
starting at ``latest`` would.

Each stream holds a Kafka consumer, so streams are bounded (:data:`MAX_CLIENTS`
in all, :data:`MAX_CLIENTS_PER_SUBJECT` per token), polled without blocking a
thread, and their blocking Kafka calls run on a small pool of their own so that
many streams cannot starve the rest of the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Annotated, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from hoststream.api.auth import Principal
from hoststream.api.context import ApiContext, context, require
from hoststream.api.routes.hosts import HOST_PATTERN
from hoststream.config import Settings
from hoststream.errors import HoststreamError
from hoststream.kafka import client_config
from hoststream.schemas import WindowAggregate, codec_for
from hoststream.streams.windows import WindowSize
from hoststream.topics import aggregate_topics_pattern

__all__ = ["MAX_CLIENTS", "MAX_CLIENTS_PER_SUBJECT", "StreamSlots", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["stream"])

#: Each client holds a Kafka consumer; bound them.
MAX_CLIENTS = 50
#: One token cannot take every slot from the others.
MAX_CLIENTS_PER_SUBJECT = 5
HEARTBEAT_S = 15.0
TOPIC_REFRESH_S = 30.0
#: How long an idle stream waits before polling its consumer again.
IDLE_POLL_S = 0.25
#: Messages taken from the consumer's local queue at once.
BATCH = 100

T = TypeVar("T")

# Metadata and close calls block for seconds while Kafka is away; on the
# default executor they would queue up behind one another and in front of the
# health check.
_KAFKA_CALLS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="api-stream")


class StreamSlots:
    """Stream slots of this process: ``total`` in all, ``per_subject`` for one caller.

    Used from the event loop only, and never across an ``await``, so taking a
    slot is atomic and concurrent requests cannot overshoot the bounds.
    """

    def __init__(self, total: int, per_subject: int) -> None:
        self.total = total
        self.per_subject = per_subject
        self.in_use: dict[str, int] = {}

    @property
    def used(self) -> int:
        return sum(self.in_use.values())

    def take(self, subject: str) -> None:
        """Take a slot; HTTPException 503 when all are taken, 429 over the caller's share."""
        if self.in_use.get(subject, 0) >= self.per_subject:
            raise HTTPException(
                429,
                f"this token already holds {self.per_subject} streams; close one first",
                headers={"Retry-After": "30"},
            )
        if self.used >= self.total:
            raise HTTPException(
                503, "too many stream clients; try again later", headers={"Retry-After": "30"}
            )
        self.in_use[subject] = self.in_use.get(subject, 0) + 1

    def release(self, subject: str) -> None:
        left = self.in_use.get(subject, 0) - 1
        if left > 0:
            self.in_use[subject] = left
        else:
            self.in_use.pop(subject, None)


_SLOTS = StreamSlots(MAX_CLIENTS, MAX_CLIENTS_PER_SUBJECT)


class _Subscription:
    """One client's consumer and slot, released exactly once however the stream ends."""

    def __init__(self, consumer: Consumer, slots: StreamSlots, subject: str) -> None:
        self.consumer = consumer
        self._slots = slots
        self._subject = subject
        # A metadata call of a disconnected client may still run when the
        # consumer is closed; librdkafka must not see both at once.
        self._lock = threading.Lock()
        self._closed = False

    async def call(self, func: Callable[[Consumer], T]) -> T:
        """``func(consumer)`` on the stream pool, never beside :meth:`close`."""

        def locked() -> T:
            with self._lock:
                if self._closed:
                    raise KafkaException("the stream is closed")
                return func(self.consumer)

        return await asyncio.get_running_loop().run_in_executor(_KAFKA_CALLS, locked)

    def close(self) -> None:
        """Free the slot now and close the consumer in the background.

        Synchronous, so it also runs to the end in a request being cancelled;
        the close itself waits for librdkafka's threads, off the event loop.
        """
        if self._closed:
            return
        self._closed = True
        self._slots.release(self._subject)

        def close_consumer() -> None:
            with self._lock:
                try:
                    self.consumer.close()
                except Exception:  # nothing to recover; the log says why
                    log.exception("closing a stream's Kafka consumer failed")

        asyncio.get_running_loop().run_in_executor(_KAFKA_CALLS, close_consumer)


class _EventStream(StreamingResponse):
    """A stream that releases its subscription even if its body never started."""

    def __init__(self, content: AsyncIterator[str], subscription: _Subscription) -> None:
        super().__init__(
            content, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )
        self._subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._subscription.close()


def _aggregate_topics(consumer: Consumer, settings: Settings) -> dict[str, list[int]]:
    pattern = re.compile(aggregate_topics_pattern(settings))
    metadata = consumer.list_topics(timeout=5)
    return {
        name: sorted(topic.partitions)
        for name, topic in metadata.topics.items()
        if pattern.match(name)
    }


def _assign_at_end(consumer: Consumer, topics: dict[str, list[int]]) -> None:
    partitions = []
    for topic, ids in topics.items():
        for partition in ids:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
            partitions.append(TopicPartition(topic, partition, high))
    consumer.assign(partitions)


def _kafka_unavailable(exc: Exception) -> HTTPException:
    log.warning("a stream could not subscribe: %r", exc)
    return HTTPException(503, "Kafka did not answer; try again later")


@router.get("/api/v1/stream/aggregates", response_class=StreamingResponse)
async def stream_aggregates(
    request: Request,
    ctx: Annotated[ApiContext, Depends(context)],
    principal: Annotated[Principal, Depends(require("read:metrics"))],
    host: Annotated[str | None, Query(pattern=HOST_PATTERN)] = None,
    metric: Annotated[str | None, Query(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")] = None,
    window: Annotated[str | None, Query(pattern=r"^[0-9]{1,6}(ms|s|m|h|d)$")] = None,
) -> StreamingResponse:
    """New aggregates as ``text/event-stream``, optionally only one host's, metric's or window's."""
    settings = ctx.settings
    # Taken before the first await, so concurrent requests see each other's slots.
    _SLOTS.take(principal.subject)
    try:
        consumer = Consumer(
            {
                **client_config(settings),
                # A throwaway group id: assign() needs none, but the client wants one.
                "group.id": f"hoststream-api-sse-{id(request)}-{time.time_ns()}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )
    except BaseException:
        _SLOTS.release(principal.subject)
        raise
    subscription = _Subscription(consumer, _SLOTS, principal.subject)
    try:
        topics = await subscription.call(lambda c: _aggregate_topics(c, settings))
        await subscription.call(lambda c: _assign_at_end(c, topics))
        decode = codec_for(settings, WindowAggregate).deserializer
    except (KafkaException, HoststreamError) as exc:
        subscription.close()
        raise _kafka_unavailable(exc) from exc
    except BaseException:
        subscription.close()
        raise

    async def events() -> AsyncIterator[str]:
        last_beat = last_refresh = time.monotonic()
        known = dict(topics)
        try:
            yield ": subscribed\n\n"
            while not await request.is_disconnected():
                # consume() with no timeout only takes what librdkafka already
                # fetched, so no thread waits on an idle stream.
                messages = consumer.consume(BATCH, timeout=0)
                now = time.monotonic()
                if now - last_refresh > TOPIC_REFRESH_S:
                    last_refresh = now
                    try:
                        current = await subscription.call(lambda c: _aggregate_topics(c, settings))
                    except KafkaException:
                        current = known  # Kafka is away; keep what we have and retry later
                    # A topic born after the client connected is read from its start.
                    new = [
                        TopicPartition(t, p, OFFSET_BEGINNING)
                        for t, ids in current.items()
                        for p in ids
                        if p not in known.get(t, [])
                    ]
                    if new:
                        consumer.incremental_assign(new)
                        known = current
                sent = False
                for message in messages:
                    if message.error() is not None:
                        continue
                    try:
                        aggregate = decode(message.value(), None)
                    except HoststreamError:
                        continue  # the sinks dead-letter such records; a viewer skips them
                    name = WindowSize(aggregate.window_size_ms).label
                    if (host and aggregate.host != host) or (metric and aggregate.metric != metric):
                        continue
                    if window and name != window:
                        continue
                    body = asdict(aggregate)
                    body["kind"] = aggregate.kind.value
                    body["labels"] = dict(aggregate.labels)
                    body["window"] = name
                    sent = True
                    last_beat = now
                    yield f"event: aggregate\ndata: {json.dumps(body)}\n\n"
                if not sent and now - last_beat > HEARTBEAT_S:
                    last_beat = now
                    yield ": keepalive\n\n"
                if not messages:
                    await asyncio.sleep(IDLE_POLL_S)
                else:
                    await asyncio.sleep(0)  # a busy stream still lets the others run
        finally:
            subscription.close()

    return _EventStream(events(), subscription)

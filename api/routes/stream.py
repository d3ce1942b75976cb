"""Server-sent events of new window aggregates, read straight from Kafka.

The consumer commits nothing and joins no group: it is assigned every
``metrics.agg.*`` partition at its end when the client connects, so a web
client sees each aggregate produced after it subscribed, as a Kafka consumer
starting at ``latest`` would.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from api.auth import Principal
from api.context import ApiContext, context, require
from api.routes.hosts import HOST_PATTERN
from hoststream.errors import HoststreamError
from hoststream.kafka import client_config
from schemas import WindowAggregate, codec_for

__all__ = ["MAX_CLIENTS", "router"]

router = APIRouter(tags=["stream"])

#: Each client holds a Kafka consumer; bound them.
MAX_CLIENTS = 50
HEARTBEAT_S = 15.0
TOPIC_REFRESH_S = 30.0


class _ClientCount:
    """Stream clients connected now, across every request of this process."""

    value = 0


def _aggregate_topics(consumer: Consumer, prefix: str) -> dict[str, list[int]]:
    pattern = re.compile(rf"^{re.escape(prefix)}metrics\.agg\.[0-9]+(ms|s|m|h|d)$")
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


def _window_name(size_ms: int) -> str:
    for unit, ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if size_ms % ms == 0:
            return f"{size_ms // ms}{unit}"
    return f"{size_ms}ms"


@router.get("/api/v1/stream/aggregates", response_class=StreamingResponse)
async def stream_aggregates(
    request: Request,
    ctx: Annotated[ApiContext, Depends(context)],
    _: Annotated[Principal, Depends(require("read:metrics"))],
    host: Annotated[str | None, Query(pattern=HOST_PATTERN)] = None,
    metric: Annotated[str | None, Query(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")] = None,
    window: Annotated[str | None, Query(pattern=r"^[0-9]{1,6}(ms|s|m|h|d)$")] = None,
) -> StreamingResponse:
    """New aggregates as ``text/event-stream``, optionally only one host's, metric's or window's."""
    if _ClientCount.value >= MAX_CLIENTS:
        raise HTTPException(503, "too many stream clients; try again later")
    settings = ctx.settings
    consumer = Consumer(
        {
            **client_config(settings),
            # A throwaway group id: assign() needs none, but the client wants one.
            "group.id": f"hoststream-api-sse-{id(request)}-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    topics = await asyncio.to_thread(_aggregate_topics, consumer, settings.topic_prefix)
    await asyncio.to_thread(_assign_at_end, consumer, topics)
    decode = codec_for(settings, WindowAggregate).deserializer
    _ClientCount.value += 1

    async def events() -> AsyncIterator[str]:
        last_beat = last_refresh = time.monotonic()
        known = dict(topics)
        try:
            yield ": subscribed\n\n"
            while not await request.is_disconnected():
                message = await asyncio.to_thread(consumer.poll, 0.5)
                now = time.monotonic()
                if now - last_refresh > TOPIC_REFRESH_S:
                    last_refresh = now
                    current = await asyncio.to_thread(
                        _aggregate_topics, consumer, settings.topic_prefix
                    )
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
                if message is None or message.error() is not None:
                    if now - last_beat > HEARTBEAT_S:
                        last_beat = now
                        yield ": keepalive\n\n"
                    continue
                try:
                    aggregate = decode(message.value(), None)
                except HoststreamError:
                    continue  # the sinks dead-letter such records; a viewer skips them
                name = _window_name(aggregate.window_size_ms)
                if (host and aggregate.host != host) or (metric and aggregate.metric != metric):
                    continue
                if window and name != window:
                    continue
                body = asdict(aggregate)
                body["kind"] = aggregate.kind.value
                body["labels"] = dict(aggregate.labels)
                body["window"] = name
                yield f"event: aggregate\ndata: {json.dumps(body)}\n\n"
        finally:
            _ClientCount.value -= 1
            await asyncio.to_thread(consumer.close)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )

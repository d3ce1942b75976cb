"""After a rebalance, nothing fetched before Faust's seek to the committed offsets is delivered.

Faust's own consumer (aiokafka driver, never started) runs ``getmany``; only
its fetch is a double (labelled below), returning records as the fetcher
would have fetched them before the seek.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from hoststream.streams._seek_hold import hold_fetching_while_seeking

SOURCE = TP("metrics.cpu", 0)


@pytest.fixture
def app() -> faust.App:
    app = faust.App("unit-seek-hold", broker="kafka://127.0.0.1:1", store="memory://")
    hold_fetching_while_seeking(app)
    return app


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(SOURCE.topic, SOURCE.partition, offset, 0, 0, b"h", b"v", None, 1, 1, ())


def fetched_before_the_seek(app: faust.App, offsets: range) -> Any:
    """Double of the fetch: one batch of records from the position before the seek."""
    consumer = app.consumer

    async def wait_next_records(timeout: float) -> tuple[dict[TP, list[Any]], set[TP]]:
        return {SOURCE: [record(o) for o in offsets]}, {SOURCE}

    consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
    consumer.highwater = lambda tp: offsets.stop  # type: ignore[method-assign]
    return consumer


def test_the_end_of_a_rebalance_stops_delivering_what_was_fetched_before_the_seek(
    app: faust.App,
) -> None:
    # The flow is on, as Faust leaves it after reading the changelog, and the
    # fetcher has fetched the source partition from where the consumer stood.
    consumer = fetched_before_the_seek(app, range(72, 80))
    consumer.resume_flow()

    async def deliver() -> list[int]:
        delivered = []
        async for _, message in consumer.getmany(timeout=1.0):
            delivered.append(message.offset)
            if message.offset == 73:
                # Faust: rebalance complete, now seeking to the committed offsets.
                await app.on_rebalance_complete.send()
        return delivered

    # Delivered after the seek, 74 to 79 would move the read position past
    # 72 and 73 (which the resume empties from the agent's queue), so that
    # the fetch from the committed offset would drop them as already read.
    assert asyncio.run(deliver()) == [72, 73]
    assert not consumer.flow_active


def test_faust_resumes_the_flow_after_the_seek(app: faust.App) -> None:
    consumer = fetched_before_the_seek(app, range(72, 75))
    consumer.resume_flow()
    asyncio.run(app.on_rebalance_complete.send())
    consumer.resume_flow()  # what Faust does once the seek is done

    async def deliver() -> list[int]:
        return [message.offset async for _, message in consumer.getmany(timeout=1.0)]

    assert asyncio.run(deliver()) == [72, 73, 74]

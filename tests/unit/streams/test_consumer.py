"""The worker's consumer delivers without tasks when nothing blocks, and as before when it does.

Faust's own aiokafka consumer class (never started, no broker); the delivery
callbacks are stand-ins for the conductor's, which put an event in a queue.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any, TypeVar

import faust
import pytest
from mode.services import WaitResults

from hoststream.streams._consumer import (
    FETCH_MAX_WAIT_MS,
    RECORDS_WAIT_S,
    LeanDeliveryConsumer,
    PromptFetchConsumerThread,
    use_lean_delivery,
)

T = TypeVar("T")


def run(consumer: LeanDeliveryConsumer, main: Coroutine[Any, Any, T]) -> T:
    # mode makes its tasks on the service's own loop.
    return consumer.loop.run_until_complete(main)


@pytest.fixture
def consumer() -> LeanDeliveryConsumer:
    app = faust.App("unit-lean-delivery", broker="kafka://127.0.0.1:1", store="memory://")
    use_lean_delivery(app)
    made = app.consumer
    assert isinstance(made, LeanDeliveryConsumer)
    return made


def test_a_delivery_that_does_not_block_runs_at_once_without_tasks(
    consumer: LeanDeliveryConsumer,
) -> None:
    delivered: list[int] = []

    async def deliver(offset: int) -> int:
        delivered.append(offset)
        return offset

    async def main() -> tuple[WaitResults, int]:
        before = len(asyncio.all_tasks())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail
            results = await consumer.wait_first(deliver(7), consumer.suspend_flow.wait())
        return results, len(asyncio.all_tasks()) - before

    results, new_tasks = run(consumer, main())
    assert delivered == [7]
    assert results.results == [7]
    assert not results.stopped
    assert new_tasks == 0


def test_a_delivery_that_blocks_finishes_once_unblocked(consumer: LeanDeliveryConsumer) -> None:
    async def main() -> list[int]:
        room = asyncio.Event()
        delivered: list[int] = []

        async def deliver(offset: int) -> int:
            await room.wait()  # the agent's queue is full
            delivered.append(offset)
            return offset

        asyncio.get_running_loop().call_later(0.01, room.set)
        results = await consumer.wait_first(deliver(8), consumer.suspend_flow.wait())
        assert results.results == [8]
        return delivered

    assert run(consumer, main()) == [8]


def test_a_blocked_delivery_is_abandoned_when_the_flow_is_suspended(
    consumer: LeanDeliveryConsumer,
) -> None:
    async def main() -> tuple[list[str], WaitResults]:
        steps: list[str] = []

        async def deliver() -> None:
            steps.append("waiting for room")
            try:
                await asyncio.Event().wait()  # never room: a rebalance must end it
            except asyncio.CancelledError:
                steps.append("cancelled")
                raise

        asyncio.get_running_loop().call_later(0.01, consumer.stop_flow)
        results = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
        await asyncio.sleep(0)  # the abandoned delivery's cancellation runs
        return steps, results

    steps, results = run(consumer, main())
    assert steps == ["waiting for room", "cancelled"]
    assert results.results == [True]


def test_an_error_in_a_delivery_propagates(consumer: LeanDeliveryConsumer) -> None:
    async def deliver() -> None:
        raise ValueError("undecodable")

    async def main() -> None:
        await consumer.wait_first(deliver(), consumer.suspend_flow.wait())

    with pytest.raises(ValueError, match="undecodable"):
        run(consumer, main())


def test_the_broker_holds_an_empty_fetch_briefly_not_for_fausts_default(
    consumer: LeanDeliveryConsumer,
) -> None:
    # A worker reading a backlog waits for the fetch in flight before the
    # partitions still behind are fetched again: Faust's 1,500 ms left it idle.
    thread = consumer._thread
    assert isinstance(thread, PromptFetchConsumerThread)

    async def made() -> tuple[int, int]:
        worker_consumer = thread._create_worker_consumer(consumer.transport)
        try:
            return worker_consumer._fetch_max_wait_ms, worker_consumer._max_partition_fetch_bytes
        finally:
            await worker_consumer.stop()  # never started: only closes it

    fetch_max_wait_ms, fetch_bytes = run(consumer, made())
    assert fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
    # Faust's other settings stay: its fetch size per partition, say.
    assert fetch_bytes == consumer.app.conf.consumer_max_fetch_size


def test_a_hand_over_of_fetched_records_waits_a_tenth_of_a_second_not_fausts_second(
    consumer: LeanDeliveryConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faust asks for records with a timeout of 1 s; aiokafka wakes a waiting
    # hand-over only when a fetch brings new records, so partitions Faust put
    # back meanwhile (their records already fetched) waited out that second.
    thread = consumer._thread
    assert isinstance(thread, PromptFetchConsumerThread)
    asked: list[float] = []

    async def in_thread(_fun: Any, *_args: Any, timeout: float, **_kwargs: Any) -> dict[Any, Any]:
        asked.append(timeout)
        return {}

    monkeypatch.setattr(thread, "_ensure_consumer", lambda: SimpleNamespace(_max_poll_records=None))
    monkeypatch.setattr(thread, "call_thread", in_thread)
    run(consumer, thread.getmany(set(), timeout=1.0))
    run(consumer, thread.getmany(set(), timeout=0.05))
    assert asked == [RECORDS_WAIT_S, 0.05]
    assert RECORDS_WAIT_S == 0.1

"""The worker's batches close when delivery pauses, when full, or ``within`` after they began.

Unit tests with an in-memory double of the few Stream members
``take_batches`` uses (``FakeStream``): messages are handed to its stream
processor directly, as Faust's passive drainer does. The worker's batches on
a real broker are exercised by the integration tests (reference equality,
kill -9 and restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from faust.streams import Stream

from hoststream.streams._batches import take_batches


class FakeEvent:
    def __init__(self, value: int) -> None:
        self.value = value


class FakeStream:
    """In-memory double of a Faust Stream for take_batches (unit tests only)."""

    def __init__(self) -> None:
        self.current_event: FakeEvent | None = None
        self.should_stop = False
        self.enable_acks = True
        self._processors: list[Callable[[Any], Awaitable[Any]]] = []
        self.acked: list[int] = []
        self.channel = self

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> None:
        raise StopAsyncIteration  # never read: the passive drainer is not started

    def add_processor(self, processor: Callable[[Any], Awaitable[Any]]) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: Any) -> None:
        pass  # the test delivers through the processor itself

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.should_stop

    async def ack(self, event: FakeEvent) -> bool:
        self.acked.append(event.value)
        return True

    async def deliver(self, value: int) -> None:
        """Hand one message to the stream processors, as the drainer would."""
        self.current_event = FakeEvent(value)
        for processor in self._processors:
            await processor(value)


def batches_of(stream: FakeStream, max_messages: int, within_s: float, idle_s: float) -> Any:
    return take_batches(cast(Stream[Any], stream), max_messages, within_s, idle_s)


def test_a_partial_batch_closes_once_delivery_pauses_not_after_within() -> None:
    async def main() -> tuple[list[int], float]:
        stream = FakeStream()
        batches = batches_of(stream, 100, within_s=30.0, idle_s=0.02)
        first = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0)  # the generator registers its processor
        started = time.monotonic()
        for value in range(3):
            await stream.deliver(value)
        batch = await asyncio.wait_for(first, 10)
        await batches.aclose()
        return [event.value for event in batch], time.monotonic() - started

    values, waited_s = asyncio.run(main())
    assert values == [0, 1, 2]
    # Faust's take_events would have held these three for the whole 30 s.
    assert waited_s < 5


def test_a_steady_trickle_is_cut_within_seconds_after_its_first_message() -> None:
    async def main() -> list[int]:
        stream = FakeStream()
        batches = batches_of(stream, 10_000, within_s=0.3, idle_s=0.2)
        first = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0)

        async def trickle() -> None:
            for value in range(1000):
                await stream.deliver(value)
                await asyncio.sleep(0.01)  # never a pause of idle_s

        feeding = asyncio.ensure_future(trickle())
        batch = await asyncio.wait_for(first, 10)
        feeding.cancel()
        await batches.aclose()
        return [event.value for event in batch]

    values = asyncio.run(main())
    # Neither the pause (which never comes) nor the size closed it: the time did.
    assert 3 < len(values) < 1000
    assert values == list(range(len(values)))


def test_a_full_batch_closes_at_once_and_the_next_message_waits_for_the_work() -> None:
    async def main() -> tuple[list[int], list[int], list[int], list[int]]:
        stream = FakeStream()
        batches = batches_of(stream, 3, within_s=30.0, idle_s=0.05)
        first = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0)
        for value in range(2):
            await stream.deliver(value)
        third = asyncio.ensure_future(stream.deliver(2))  # fills it: held until the work is done
        batch = await asyncio.wait_for(first, 10)
        fourth = asyncio.ensure_future(stream.deliver(3))
        await asyncio.sleep(0.05)
        acked_during_work = list(stream.acked)
        assert not third.done()
        assert not fourth.done()
        second = asyncio.ensure_future(batches.__anext__())  # the work on the first is done
        await asyncio.wait_for(third, 10)
        await asyncio.wait_for(fourth, 10)
        acked_after_work = list(stream.acked)
        next_batch = await asyncio.wait_for(second, 10)
        await batches.aclose()
        return (
            [event.value for event in batch],
            acked_during_work,
            acked_after_work,
            [event.value for event in next_batch],
        )

    batch, acked_during_work, acked_after_work, next_batch = asyncio.run(main())
    assert batch == [0, 1, 2]
    # Acknowledged (so committed) only once the caller's work on the batch returned.
    assert acked_during_work == []
    assert acked_after_work == [0, 1, 2]
    assert next_batch == [3]


def test_closing_the_batches_restores_the_stream_and_leaves_the_batch_out_unacknowledged() -> None:
    async def main() -> FakeStream:
        stream = FakeStream()
        batches = batches_of(stream, 10, within_s=1.0, idle_s=0.01)
        first = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0)
        assert stream.enable_acks is False  # the batches acknowledge, after the work
        await stream.deliver(1)
        await asyncio.wait_for(first, 10)
        await batches.aclose()
        return stream

    stream = asyncio.run(main())
    assert stream.enable_acks is True
    assert stream._processors == []
    # Closed while the batch was out (an error, the worker stopping): not
    # acknowledged, so its offsets are not committed and it is read again.
    assert stream.acked == []


def test_a_delivery_held_at_the_gate_goes_on_when_the_stream_stops() -> None:
    async def main() -> tuple[bool, bool, list[int]]:
        stream = FakeStream()
        batches = batches_of(stream, 1, within_s=30.0, idle_s=30.0)
        first = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0)
        held_first = asyncio.ensure_future(stream.deliver(0))  # fills the batch
        await asyncio.wait_for(first, 10)
        held_next = asyncio.ensure_future(stream.deliver(1))  # waits at the gate
        await asyncio.sleep(0.01)
        stream.should_stop = True
        with contextlib.suppress(StopAsyncIteration):
            await batches.__anext__()  # the work on [0] returned; the stream stops
        await asyncio.sleep(0.05)
        return held_first.done(), held_next.done(), stream.acked

    first_done, next_done, acked = asyncio.run(main())
    assert first_done
    assert next_done  # not blocked for good on a gate nobody opens
    assert acked == [0]

"""Faust's aiokafka consumer, handing each fetched message on without four tasks.

Faust's fetcher loop (``Consumer._drain_messages``) delivers every message
with ``await self.wait_first(callback(message), self.suspend_flow.wait())``,
so that a rebalance (which sets ``suspend_flow``) can abandon a delivery
blocked on a full agent queue. mode's ``wait_first`` makes a task of each
awaitable and of the service's ``stopped`` and ``crashed`` events (four
tasks), waits for the first, and cancels the rest: per message, whether or
not anything blocks. In a profile of the worker that was a tenth of its time.

Nearly always the delivery does not block: the conductor puts the event in
the agent's queue and returns. :class:`LeanDeliveryConsumer` therefore runs
the delivery coroutine at once, and only when it suspends (a full queue,
flow control, a full producer buffer) does it hand the rest of it to
``wait_first`` with the other awaitables, exactly as before. A delivery that
completes at once was never waiting, so there was nothing for
``suspend_flow`` to interrupt.

Its consumer thread (:class:`PromptFetchConsumerThread`) also has the broker
hold a fetch that finds nothing for 100 ms, not Faust's 1,500, and waits at
most 100 ms, not Faust's second, for fetched records to hand over.
"""

from __future__ import annotations

import inspect
from collections.abc import Coroutine, Generator
from typing import Any

import faust
from faust.transport.consumer import RecordMap
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

__all__ = [
    "FETCH_MAX_WAIT_MS",
    "RECORDS_WAIT_S",
    "LeanDeliveryConsumer",
    "PromptFetchConsumerThread",
    "use_lean_delivery",
]


#: How long the broker may hold a fetch that finds no new record (ms); Faust sets 1,500.
FETCH_MAX_WAIT_MS = 100
#: How long one hand-over waits for records (s); Faust's fetcher loop asks for 1.
RECORDS_WAIT_S = 0.1


class PromptFetchConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, its fetches held and its hand-overs kept waiting briefly.

    aiokafka keeps one fetch in flight per broker, and fetches a partition
    again only once what it holds of it is used up. While a backlog is read,
    the partitions of some topics reach their end first (their events are
    smaller, so more of them come per fetch); the fetch in flight then asks
    only for those, finds nothing, and the broker holds it. The partitions
    still behind run dry meanwhile and wait for it to come back before they
    are fetched again: with Faust's 1,500 ms the worker sat idle for up to
    that long, time and again. The streams benchmark's rate rose by about a
    sixth with 100 ms. A worker that is caught up asks the broker ten times a
    second instead of two-thirds of a time.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        """Hand over what is fetched of ``active_partitions``, waiting at most ``RECORDS_WAIT_S``.

        While the agent's queue is under pressure Faust takes the partitions
        that filled it out of ``active_partitions`` and puts them back once it
        has drained, but a hand-over already waiting does not notice: aiokafka
        wakes it only when a fetch brings new records. Reading a backlog, the
        queue is filled by the cpu and disk partitions while the others have
        reached their end; the hand-over then asked for those others alone and
        waited out Faust's second with the cpu and disk records already
        fetched, the worker idle. Asking again every ``RECORDS_WAIT_S`` sees
        the partitions put back at most that long after.
        """
        return await super().getmany(active_partitions, min(timeout, RECORDS_WAIT_S))


class LeanDeliveryConsumer(Consumer):
    """Runs a delivery at once, and waits on it with the flow's events only if it suspends."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return PromptFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(self, *coros: WaitArgT, timeout: Seconds | None = None) -> WaitResults:
        if timeout is not None:
            return await super().wait_first(*coros, timeout=timeout)
        first = coros[0] if coros else None
        if not inspect.iscoroutine(first) or self.suspend_flow.is_set():
            return await super().wait_first(*coros)
        rest = coros[1:]
        try:
            step = first.send(None)
        except StopIteration as done:
            _close(rest)
            return WaitResults([first], [done.value], False)
        except BaseException:
            _close(rest)
            raise
        return await super().wait_first(_Started(first, step), *rest)


def _close(awaitables: tuple[WaitArgT, ...]) -> None:
    # Never started: closed, so Python does not warn that they were never awaited.
    for awaitable in awaitables:
        if inspect.iscoroutine(awaitable):
            awaitable.close()


class _Started:
    """A coroutine already run up to ``step``, its first suspension, as an awaitable."""

    def __init__(self, coro: Coroutine[Any, Any, Any], step: Any) -> None:
        self._coro = coro
        self._step = step

    def __await__(self) -> Generator[Any, None, Any]:
        coro, step = self._coro, self._step
        while True:
            try:
                # What the coroutine waits on goes to the task running this
                # awaitable; the task resumes it here when that is done.
                yield step
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # the task's cancellation, say: the coroutine's to handle
                try:
                    step = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    step = coro.send(None)
                except StopIteration as done:
                    return done.value


def use_lean_delivery(app: faust.App) -> None:
    """Have ``app`` create its consumer as a :class:`LeanDeliveryConsumer` (before it has one)."""
    # The transport's consumer class is a class attribute; this app's own transport shadows it.
    app.transport.Consumer = LeanDeliveryConsumer  # type: ignore[misc]

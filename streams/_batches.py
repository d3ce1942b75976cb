"""Batches of a Faust stream that close when the fetched messages run out.

Faust's ``Stream.take_events(max, within)`` waits for ``max`` messages or
for ``within`` seconds, counted from when it starts waiting. Reading a
backlog, the last batch of every burst therefore sits out the whole
``within`` after its messages have all arrived, and a window closed by that
batch is emitted that much later in live operation too. :func:`take_batches`
keeps Faust's mechanism (a stream processor fills the batch, the events are
acknowledged only after the caller has processed them, so offsets are
committed only after the work is stored) but closes a batch on the first of:

- ``max_messages`` messages;
- ``idle_s`` seconds in which no message arrived: the consumer has delivered
  everything it had fetched, so waiting longer only delays the work (under a
  steady trickle of messages this never comes and the next bound holds);
- ``within_s`` seconds since the batch's first message arrived.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

from faust.streams import Stream
from faust.types import ChannelT, EventT

__all__ = ["IDLE_S", "take_batches"]

#: A pause in delivery that means the consumer has handed over all it fetched:
#: the delivery of a fetched backlog has gaps of a millisecond or two, a fetch
#: round trip to the broker takes longer.
IDLE_S = 0.02


class _Filling:
    """The batch being filled, and the gate that holds delivery while it is processed."""

    def __init__(self, stream: Stream[Any], max_messages: int) -> None:
        self.stream = stream
        self.max_messages = max_messages
        self.events: list[EventT[Any]] = []
        self.first_at = 0.0
        #: Set when a batch gets its first message and when it is full.
        self.changed = asyncio.Event()
        self.gate: asyncio.Future[None] | None = None
        self.closed = False  # the batches ended: deliveries pass through untaken

    def is_full(self) -> bool:
        return len(self.events) >= self.max_messages

    async def add(self, value: Any) -> Any:
        """The stream processor: adds the current event, waiting while a batch is out."""
        while self.gate is not None:
            await asyncio.shield(self.gate)
        if self.closed:
            return value  # never acknowledged, so read again after the restart
        event = self.stream.current_event
        if event is None:
            raise RuntimeError("a stream processor ran without a current event")
        if not self.events:
            self.first_at = time.monotonic()
            self.changed.set()
        self.events.append(event)
        if self.is_full():
            self.changed.set()
            # Close the gate at once: no message beyond the batch's last.
            gate = self.close_gate()
            await asyncio.shield(gate)
        return value

    def close_gate(self) -> asyncio.Future[None]:
        if self.gate is None:
            self.gate = asyncio.get_running_loop().create_future()
        return self.gate

    def open_gate(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None and not gate.done():
            gate.set_result(None)


async def take_batches(
    stream: Stream[Any],
    max_messages: int,
    within_s: float,
    idle_s: float = IDLE_S,
) -> AsyncIterator[list[EventT[Any]]]:
    """Yield lists of events; each is acknowledged once the caller asks for the next batch."""
    filling = _Filling(stream, max_messages)
    acks_were_enabled = stream.enable_acks
    stream.enable_acks = False  # this generator acknowledges, after the work
    stream.add_processor(filling.add)
    # As take_events does: the stream is drained in the background, through
    # the processor above, while this generator waits for a batch to close.
    stream._enable_passive(cast(ChannelT[Any], aiter(stream.channel)))
    try:
        while not stream.should_stop:
            if await _wait_for_batch(stream, filling, within_s, idle_s):
                break
            filling.close_gate()
            batch = list(filling.events)
            try:
                yield batch
                # Only after the caller's work returned: a batch it abandoned
                # (an error, the worker stopping) is not acknowledged, so its
                # offsets are not committed and it is read again.
                for event in batch:
                    await stream.ack(event)
            finally:
                filling.events.clear()
                filling.open_gate()
    finally:
        stream.enable_acks = acks_were_enabled
        stream._processors.remove(filling.add)
        # A delivery held at the gate goes on, and takes nothing into a batch.
        filling.closed = True
        filling.open_gate()


async def _wait_for_batch(
    stream: Stream[Any], filling: _Filling, within_s: float, idle_s: float
) -> bool:
    """Wait until a batch of at least one message should close; True if the stream stopped."""
    # The batch only grows while this waits: its size tells whether anything came.
    seen = len(filling.events)
    while not filling.is_full():
        timeout_s: float | None = None  # an empty batch waits for its first message
        if filling.events:
            left_s = filling.first_at + within_s - time.monotonic()
            if left_s <= 0:
                return False
            timeout_s = min(idle_s, left_s)
        filling.changed.clear()
        # mode types the waitable as its own Event; an asyncio.Event has the
        # same awaitable ``wait()`` (Faust's take_events passes one too). Its
        # answer also says "stopped" when the time ran out: ask the stream.
        await stream.wait_for_stopped(filling.changed, timeout=timeout_s)  # type: ignore[arg-type]
        if stream.should_stop:
            return True
        if filling.events and len(filling.events) == seen:
            return False  # nothing arrived for idle_s: all that was fetched is here
        seen = len(filling.events)
    return False

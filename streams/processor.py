"""The stream processor's logic between Kafka and the aggregation core.

:class:`BatchProcessor` takes batches of raw metric messages, keeps one window
state per (host, family) in a table (any mutable mapping of bytes; in the
worker a Faust table with a changelog), runs the alert rules on the windows
that close, and hands closed windows and alert events to an ``emit``
coroutine. It knows nothing of Faust, so unit tests drive it with a dict and
a list.

Tracing: each batch is handled inside a :data:`PROCESS_SPAN` span linked to
the producer spans its messages name, and the windows the timer closes inside
a :data:`CLOSE_QUIET_SPAN` span, so ``emit`` and ``reject`` run (and log) in
that span's context and can put its ``traceparent`` on what they send. With
tracing off neither span exists and no header is read.

Order of effects, for at-least-once without loss: the closed windows are
emitted and acknowledged first, then the states are written, then (by the
caller) the source offsets are committed. A crash in between repeats work,
and a repeated window is identical because the core is deterministic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, cast

from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.dead_letters import Rejection
from hoststream.errors import SerializationError
from hoststream.schemas import RecordDeserializer
from hoststream.schemas.records import AlertEvent, MetricEvent, WindowAggregate
from hoststream.schemas.validation import Validator
from hoststream.streams._table import partition_of, state_key
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.rules.engine import RuleEngine
from hoststream.streams.state import FamilyState
from hoststream.tracing import KafkaHeaders, batch_span, get_tracer, tracing_enabled

__all__ = ["CLOSE_QUIET_SPAN", "PROCESS_SPAN", "BatchProcessor", "SourceMessage"]

log = logging.getLogger(__name__)

_NEVER = 2**62  # beyond any wall-clock millisecond; reset when the key sees an event

#: The span of one batch of metric messages; it links to the producer spans
#: named by the messages' ``traceparent``, and what the batch emits carries its own.
PROCESS_SPAN = "aggregate metrics"
#: The span of windows closed on wall-clock time (quiet hosts, nodata rules):
#: no message caused them, so it has no links. Made only when something closed.
CLOSE_QUIET_SPAN = "close quiet windows"


class SourceMessage(Protocol):
    """What the processor needs of a consumed message (Faust's ``Message`` has it)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


Emit = Callable[[Sequence[WindowAggregate], Sequence[AlertEvent]], Awaitable[None]]
Reject = Callable[[Rejection[SourceMessage]], Awaitable[None]]


class BatchProcessor:
    """Aggregates batches of metric messages into window states and closed windows."""

    def __init__(
        self,
        aggregator: WindowAggregator,
        table: MutableMapping[bytes, bytes],
        *,
        decode: RecordDeserializer[MetricEvent],
        emit: Emit,
        reject: Reject,
        family_of_topic: Mapping[str, str],
        rules: RuleEngine | None = None,
        validator: Validator | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        """Wire the processor.

        Args:
            aggregator: the aggregation core.
            table: window states by key ``b"<partition>|<family>|<host>"``.
            decode: the MetricEvent deserializer of the configured wire format.
            emit: sends closed windows and alert events; returns once they are acknowledged.
            reject: sends an undecodable or invalid message to its dead-letter topic, with a reason.
            family_of_topic: the family each source topic carries.
            rules: the alert rules to run on closed windows; None: no alerts.
            validator: the validation contract every event must meet (its
                timestamp within a window around ``clock_ms``: one event from a
                host with a wrong clock would otherwise push its watermark ahead
                and make every later sample late); default: the default limits.
            clock_ms: wall-clock milliseconds; tests pass a fake.
        """
        self.aggregator = aggregator
        self.table = table
        self._decode = decode
        self._emit = emit
        self._reject = reject
        self._family_of_topic = dict(family_of_topic)
        self.rules = rules
        self._validator = validator if validator is not None else Validator()
        self._clock_ms = clock_ms
        # Wall time each key was last seen. Deliberately not persisted: after a
        # restart every key gets a full quiet period to deliver its backlog
        # before wall-clock closing could drop its samples as late.
        self._last_seen: dict[bytes, int] = {}
        # Wall time before which a key cannot need a wall-clock close, so the
        # timer parses only the states that may be due.
        self._due: dict[bytes, int] = {}
        # The batch path and the timer path both read, emit and write states,
        # with awaits in between; one at a time keeps either from losing the other's work.
        self._lock = asyncio.Lock()
        # The next offset to process in each source partition: the timer closes
        # quiet hosts only where the worker has read all there is, so a backlog
        # (after a restart, or while the worker lags) is never cut short.
        self._next_offset: dict[tuple[str, int], int] = {}

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) to the offset after the last message processed there."""
        return dict(self._next_offset)

    def _decode_message(
        self, message: SourceMessage, now: int
    ) -> MetricEvent | Rejection[SourceMessage]:
        ctx = SerializationContext(message.topic, MessageField.VALUE)
        try:
            event = self._decode(message.value, ctx)
        except SerializationError as exc:
            return Rejection(message, str(exc), type(exc).__name__)
        expected = self._family_of_topic.get(message.topic)
        if event.family != expected:
            # Its state would be keyed by a family whose topic partition it is not on.
            return Rejection(
                message,
                f"a {event.family!r} event on topic {message.topic!r}, which carries {expected!r}",
                "WrongTopic",
            )
        # The topic's family was checked above, against this worker's own routing.
        violation = self._validator.check_event(event, None, now)
        if violation is not None:
            return Rejection(message, violation.reason, violation.error)
        return event

    def _load(self, key: bytes, event: MetricEvent) -> FamilyState:
        raw = self.table.get(key)
        if raw is None:
            return self.aggregator.new_state(event.host, event.family)
        return FamilyState.from_bytes(raw)

    async def process(self, messages: Iterable[SourceMessage]) -> int:
        """Aggregate one batch; return the number of windows it closed.

        The batch's events are applied per (host, family) in partition order,
        and each state is read and written once per batch.
        """
        batch = list(messages)
        async with self._lock:
            # Begun once the lock is held, so the span times the work and not
            # the wait for the timer.
            with batch_span(PROCESS_SPAN, map(_headers, batch)) as span:
                closed, alerts, rejected = await self._process(batch)
                if span is not None:
                    span.set_attribute("hoststream.windows.closed", len(closed))
                    span.set_attribute("hoststream.alerts.raised", len(alerts))
                    span.set_attribute("hoststream.messages.rejected", rejected)
            return len(closed)

    async def _process(
        self, batch: Sequence[SourceMessage]
    ) -> tuple[list[WindowAggregate], list[AlertEvent], int]:
        """The work of :meth:`process`, under its lock: closed windows, alerts, rejections."""
        now = self._clock_ms()
        groups: dict[bytes, list[MetricEvent]] = {}
        rejected = 0
        for message in batch:
            offset = getattr(message, "offset", None)
            if isinstance(offset, int):
                tp = (message.topic, message.partition)
                self._next_offset[tp] = max(self._next_offset.get(tp, 0), offset + 1)
            decoded = self._decode_message(message, now)
            if isinstance(decoded, Rejection):
                log.warning("rejected a message of %s: %s", message.topic, decoded.reason)
                await self._reject(decoded)
                rejected += 1
                continue
            key = state_key(message.partition, decoded.family, decoded.host)
            groups.setdefault(key, []).append(decoded)
        closed: list[WindowAggregate] = []
        alerts: list[AlertEvent] = []
        states: dict[bytes, FamilyState] = {}
        for key, events in groups.items():
            state = self._load(key, events[0])
            closed_here: list[WindowAggregate] = []
            for event in events:
                closed_here += self.aggregator.add(state, event).aggregates
            if self.rules is not None and closed_here:
                alerts += self.rules.evaluate(state, closed_here)
            closed += closed_here
            states[key] = state
            self._last_seen[key] = now
            self._due[key] = self._next_due(state, now)
        await self._emit(closed, alerts)
        for key, state in states.items():
            self.table[key] = state.to_bytes()
        return closed, alerts, rejected

    async def close_quiet(self, partitions: Iterable[int]) -> int:
        """Close windows of quiet hosts on wall-clock time, and run nodata rules.

        Returns the number of windows closed and alerts raised.

        Args:
            partitions: the source partitions this worker owns; other keys are
                left to their owner.
        """
        owned = set(partitions)
        async with self._lock:
            now = self._clock_ms()
            closed: list[WindowAggregate] = []
            alerts: list[AlertEvent] = []
            states: dict[bytes, FamilyState] = {}
            for key in sorted(k for k in list(self.table.keys()) if partition_of(k) in owned):
                if self._due.get(key, now) > now:
                    continue
                raw = self.table.get(key)
                if raw is None:
                    self._due.pop(key, None)
                    continue
                state = FamilyState.from_bytes(raw)
                last_seen = self._last_seen.setdefault(key, now)
                if now - last_seen >= self.aggregator.quiet_after_ms(state):
                    found = self.aggregator.close_on_wall_clock(state, now)
                    raised: list[AlertEvent] = []
                    if self.rules is not None:
                        raised = self.rules.evaluate(state, found)
                        raised += self.rules.check_nodata(state, now)
                    if found or raised:
                        closed += found
                        alerts += raised
                        states[key] = state
                self._due[key] = self._next_due(state, last_seen)
            # No span for a tick that closed nothing: the timer runs every second.
            span: AbstractContextManager[object] = nullcontext()
            if (closed or alerts) and tracing_enabled():
                span = get_tracer().start_as_current_span(
                    CLOSE_QUIET_SPAN,
                    attributes={
                        "hoststream.windows.closed": len(closed),
                        "hoststream.alerts.raised": len(alerts),
                    },
                )
            with span:
                await self._emit(closed, alerts)
            for key, state in states.items():
                self.table[key] = state.to_bytes()
            return len(closed) + len(alerts)

    def _next_due(self, state: FamilyState, last_seen: int) -> int:
        """When a wall-clock close of ``state`` may first be due: quiet and past end + grace."""
        candidates = [self.aggregator.next_close_ms(state)]
        if self.rules is not None:
            candidates.append(self.rules.next_due_ms(state))
        due = [c for c in candidates if c is not None]
        if not due:
            return _NEVER
        return max(min(due), last_seen + self.aggregator.quiet_after_ms(state))


def _headers(message: SourceMessage) -> KafkaHeaders:
    # Not part of SourceMessage: the processor works without them (tests, and
    # tracing off), and Faust's Message has them as a list or a mapping.
    return cast(KafkaHeaders, getattr(message, "headers", None))

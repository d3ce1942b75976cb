"""The stream processor's logic between Kafka and the aggregation core.

:class:`BatchProcessor` takes batches of raw metric messages, decodes them
into columns (:mod:`streams.decode`), keeps one window state per
(host, family) in memory, closes windows for the whole batch at once, runs
the alert rules on the windows that closed, and hands closed windows and
alert events to an ``emit`` coroutine. A table (any mutable mapping of
bytes; in the worker a Faust table with a changelog) receives what each
batch changed, as the compact records of :class:`~streams.state.StateRecords`,
and is read back only for a state this process does not hold, or holds in
an older version than the table (after a restart or a rebalance). It knows
nothing of Faust, so unit tests drive it with a dict and a list.

Tracing: each batch is handled inside a :data:`PROCESS_SPAN` span linked to
the producer spans its messages name, and the windows the timer closes inside
a :data:`CLOSE_QUIET_SPAN` span, so ``emit`` and ``reject`` run (and log) in
that span's context and can put its ``traceparent`` on what they send. With
tracing off neither span exists and no header is read.

Order of effects, for at-least-once without loss: the closed windows are
emitted and (with a ``stored`` hook) acknowledged first, then the states are
written (and acknowledged), then (by the caller) the source offsets are
committed. A crash in between repeats work,
and a repeated window is identical because the core is deterministic.

Closing on the wall clock (:meth:`BatchProcessor.close_quiet`), for the
partitions the caller has read to their end (now, or as of a time the caller
gives, at which the partition's states are then judged): a host's event time
is taken to run on with the wall clock since its last event, so a window
closes once that reaches its end plus grace; a window whose data has arrived
is emitted about grace after its end, without waiting for the host's next
collection. :meth:`BatchProcessor.due_ms` tells the caller when a partition
may next have something to close, so it can look then rather than on a tick.
A host whose events run behind the wall clock is not cut short by this: its
lag is subtracted. A host that has sent nothing for its quiet period has its
windows closed once wall time passes end plus grace. After a restart every
host gets a full quiet period first, so a backlog is read before its windows
could be closed early. A state whose host has sent nothing for the retention
period (default one hour) and has nothing open is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from opentelemetry.trace import Span

from hoststream.dead_letters import Rejection
from hoststream.errors import SerializationError, StreamsError
from hoststream.schemas import RecordDeserializer
from hoststream.schemas.records import AlertEvent, MetricEvent
from hoststream.schemas.validation import Validator
from hoststream.streams._table import partition_of, state_key
from hoststream.streams.aggregator import ClosedWindows, WindowAggregator
from hoststream.streams.decode import DecodedEvent, EventDecoder
from hoststream.streams.rules.columns import RuleColumns
from hoststream.streams.rules.engine import RuleEngine
from hoststream.streams.state import Chunk, FamilyState, StateRecords
from hoststream.tracing import KafkaHeaders, batch_span, get_tracer, tracing_enabled

__all__ = [
    "CLOSE_QUIET_SPAN",
    "DEFAULT_RETENTION_MS",
    "PROCESS_SPAN",
    "BatchProcessor",
    "SourceMessage",
]

log = logging.getLogger(__name__)

_NEVER = 2**62  # beyond any wall-clock millisecond; reset when the key sees an event

#: The span of one batch of metric messages; it links to the producer spans
#: named by the messages' ``traceparent``, and what the batch emits carries its own.
PROCESS_SPAN = "aggregate metrics"
#: The span of windows closed on wall-clock time (quiet hosts, nodata rules):
#: no message caused them, so it has no links. Made only when something closed.
CLOSE_QUIET_SPAN = "close quiet windows"

#: How long a host may send nothing before its state is dropped.
DEFAULT_RETENTION_MS = 3_600_000

# Table keys of a state's records besides its header (the key itself).
_SEPARATOR = b"\x1f"
_SERIES = b"s"
_GAUGES_EVERY_MS = 10_000
#: About how many held samples' windows are reduced and emitted at a time.
#: Memory freed after a burst of closes mostly stays with the process, so
#: each slice's temporaries add to its peak: 400,000 left 2,000 hosts at
#: 383-447 MiB, 100,000 at 341 MiB, with no loss of throughput (a batch waits
#: once for all its slices' aggregates; the timer, a few ms a slice).
_CLOSE_SLICE_SAMPLES = 100_000


class SourceMessage(Protocol):
    """What the processor needs of a consumed message (Faust's ``Message`` has it)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


Emit = Callable[[ClosedWindows, Sequence[AlertEvent]], Awaitable[None]]
Reject = Callable[[Rejection[SourceMessage]], Awaitable[None]]


def _series_key(key: bytes) -> bytes:
    return key + _SEPARATOR + _SERIES


def _segment_key(key: bytes, start: int) -> bytes:
    return key + _SEPARATOR + str(start).encode()


def is_state_key(key: bytes) -> bool:
    """Whether a table key is a state's header (and not one of its other records)."""
    return _SEPARATOR not in key


@dataclass(slots=True)
class _Written:
    """What the table holds of a state, as this process last wrote or read it."""

    header: bytes
    series: int
    segments: set[int]


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
        retention_ms: int = DEFAULT_RETENTION_MS,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        stored: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Wire the processor.

        Args:
            aggregator: the aggregation core.
            table: state records by key ``b"<partition>|<family>|<host>"`` (the
                header) and that key followed by ``0x1f`` and a suffix (the rest).
            decode: the MetricEvent deserializer of the configured wire format.
            emit: sends closed windows and alert events; they count as stored once
                ``stored`` returns (without the hook: once ``emit`` returns).
            reject: sends an undecodable or invalid message to its dead-letter topic, with a reason.
            family_of_topic: the family each source topic carries.
            rules: the alert rules to run on closed windows; None: no alerts.
            validator: the validation contract every event must meet (its
                timestamp within a window around ``clock_ms``: one event from a
                host with a wrong clock would otherwise push its watermark ahead
                and make every later sample late); default: the default limits.
            retention_ms: a state whose host sent nothing for this long, and
                that has no open window, is dropped.
            clock_ms: wall-clock milliseconds; tests pass a fake.
            stored: returns once every write to ``table`` and every window
                emitted so far is durable (the worker: its changelog records
                and aggregates acknowledged); awaited after a batch's windows
                are emitted, before its states are written, and again after.
        """
        self.aggregator = aggregator
        self.table = table
        self._decoder = EventDecoder(decode)
        self._emit = emit
        self._reject = reject
        self._family_of_topic = dict(family_of_topic)
        self.rules = rules
        self._validator = validator if validator is not None else Validator()
        self._rule_windows = (
            None
            if rules is None
            else frozenset((r.selector.metric, r.selector.window_ms) for r in rules.rules)
        )
        self._rule_columns = RuleColumns(rules.rules if rules is not None else [])
        self._retention_ms = retention_ms
        self._clock_ms = clock_ms
        self._stored = stored
        # The states this process holds, and what the table held of each when
        # this process last wrote or read it: a different header in the table
        # means someone else (a worker that had the partition) moved it on.
        self._states: dict[bytes, FamilyState] = {}
        self._written: dict[bytes, _Written] = {}
        # Wall time each key was last seen. Deliberately not persisted: after a
        # restart every key gets a full quiet period to deliver its backlog
        # before wall-clock closing could drop its samples as late.
        self._last_seen: dict[bytes, int] = {}
        # Wall time before which a key cannot need a wall-clock close, so the
        # timer looks only at the states that may be due.
        self._due: dict[bytes, int] = {}
        # Per partition, no later than the earliest due of its keys (exact after
        # each close_quiet that looked at it, lowered by batches in between), so
        # the timer knows when looking is worth it. None known: look.
        self._partition_due: dict[int, int] = {}
        # The batch path and the timer path both read, emit and write states,
        # with awaits in between; one at a time keeps either from losing the other's work.
        self._lock = asyncio.Lock()
        # The next offset to process in each source partition: the timer closes
        # quiet hosts only where the worker has read all there is, so a backlog
        # (after a restart, or while the worker lags) is never cut short.
        self._next_offset: dict[tuple[str, int], int] = {}
        self._gauges_at = 0
        # The table's size and its state keys when last read (see _state_keys).
        self._scanned: tuple[int, list[bytes]] | None = None

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) to the offset after the last message processed there."""
        return dict(self._next_offset)

    def due_ms(self) -> dict[int, int]:
        """Partition to the wall time before which :meth:`close_quiet` has nothing to do there.

        Never later than the truth for the states this process has looked at
        (a batch may have lowered it); a partition left out may hold states
        :meth:`close_quiet` has not looked at yet, so it is due now.
        """
        return dict(self._partition_due)

    def _decode_message(
        self, message: SourceMessage, now: int
    ) -> DecodedEvent | Rejection[SourceMessage]:
        try:
            event = self._decoder(message.value, message.topic)
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
        violation = self._validator.check_columns(
            host=event.host,
            family=event.family,
            timestamp_ms=event.timestamp_ms,
            series=event.series,
            values=event.values,
            layout=event.layout,
            host_labels=event.host_labels,
            now_ms=now,
        )
        if violation is not None:
            return Rejection(message, violation.reason, violation.error)
        return event

    def _load(self, key: bytes, host: str, family: str) -> FamilyState | None:
        """The state of ``key``: held in memory if the table agrees, else read from it."""
        header = self.table.get(key)
        held = self._states.get(key)
        written = self._written.get(key)
        if held is not None and written is not None and header == written.header:
            return held
        if header is None:
            if held is not None:  # the table lost it (a revoked partition): start afresh
                self._forget(key)
            return None if not host else self._adopt(key, FamilyState(host, family), None)
        if header[:1] == b"{":
            raise StreamsError(_legacy_state_message(key))
        starts = StateRecords.segment_starts(header)
        segments = [self.table.get(_segment_key(key, start)) for start in starts]
        series = self.table.get(_series_key(key))
        if series is None:  # written before the header, so only a damaged table lacks it
            raise StreamsError(f"the window table holds a header but no series for {key!r}")
        state = StateRecords.restore(header, series, [s for s in segments if s is not None])
        return self._adopt(key, state, _Written(header, len(state.series), set(starts)))

    def _adopt(self, key: bytes, state: FamilyState, written: _Written | None) -> FamilyState:
        self._states[key] = state
        if written is None:
            self._written.pop(key, None)
        else:
            self._written[key] = written
        return state

    def _forget(self, key: bytes) -> None:
        self._states.pop(key, None)
        self._written.pop(key, None)
        self._last_seen.pop(key, None)
        self._due.pop(key, None)

    def _save(self, key: bytes, state: FamilyState, touched: Iterable[int]) -> None:
        """Write the records of ``state`` that changed: header, series if grown, touched panes."""
        pane = self.aggregator.pane
        by_pane: dict[int, list[Chunk]] = {start: [] for start in state.sketches}
        for chunk in state.chunks:
            by_pane.setdefault(pane.start_of(chunk.ts), []).append(chunk)
        written = self._written.get(key) or _Written(b"", 0, set())
        if len(state.series) != written.series:
            self.table[_series_key(key)] = StateRecords.series_of(state)
            written.series = len(state.series)
        live = set(by_pane)
        shared: dict[int, Chunk] = {}
        for start in sorted((set(touched) | state.changed_panes) & live):
            chunks = by_pane[start]
            segment = StateRecords.segment_of(chunks, state.sketches.get(start))
            self.table[_segment_key(key, start)] = segment
            # The chunks read their values from the record from now on: the
            # table keeps it, so the samples are held once.
            for old, new in zip(chunks, StateRecords.sharing_values(chunks, segment), strict=True):
                shared[id(old)] = new
        if shared:
            state.chunks = [shared.get(id(c), c) for c in state.chunks]
        state.changed_panes.clear()
        for start in sorted(written.segments - live):
            self.table.pop(_segment_key(key, start), None)
        written.segments = live
        written.header = StateRecords.header_of(state, live)
        self.table[key] = written.header
        self._written[key] = written

    def _drop(self, key: bytes) -> None:
        written = self._written.get(key)
        if written is not None:
            for start in written.segments:
                self.table.pop(_segment_key(key, start), None)
        self.table.pop(_series_key(key), None)
        self.table.pop(key, None)
        self._forget(key)

    async def process(self, messages: Iterable[SourceMessage]) -> int:
        """Aggregate one batch; return the number of windows it closed.

        The batch's events are applied per (host, family) in partition order;
        the windows they close are reduced together, and each changed state
        writes its changed records once.
        """
        batch = list(messages)
        async with self._lock:
            # Begun once the lock is held, so the span times the work and not
            # the wait for the timer.
            with batch_span(PROCESS_SPAN, map(_headers, batch)) as span:
                closed, alerts, rejected = await self._process(batch)
                if span is not None:
                    span.set_attribute("hoststream.windows.closed", closed)
                    span.set_attribute("hoststream.alerts.raised", alerts)
                    span.set_attribute("hoststream.messages.rejected", rejected)
            return closed

    async def _process(self, batch: Sequence[SourceMessage]) -> tuple[int, int, int]:
        """The work of :meth:`process`, under its lock: windows closed, alerts, rejections."""
        now = self._clock_ms()
        groups: dict[bytes, list[DecodedEvent]] = {}
        rejected = 0
        next_offset = self._next_offset
        for message in batch:
            offset = getattr(message, "offset", None)
            if isinstance(offset, int):
                tp = (message.topic, message.partition)
                if offset >= next_offset.get(tp, 0):
                    next_offset[tp] = offset + 1
            decoded = self._decode_message(message, now)
            if isinstance(decoded, Rejection):
                log.warning("rejected a message of %s: %s", message.topic, decoded.reason)
                await self._reject(decoded)
                rejected += 1
                continue
            key = state_key(message.partition, decoded.family, decoded.host)
            group = groups.get(key)
            if group is None:
                groups[key] = [decoded]
            else:
                group.append(decoded)
        aggregator = self.aggregator
        pane = aggregator.pane
        changes: list[tuple[FamilyState, int | None]] = []
        touched: dict[bytes, set[int]] = {}
        counts: dict[str, list[int]] = {}
        for key, events in groups.items():
            first = events[0]
            state = self._load(key, first.host, first.family)
            assert state is not None  # a host is given
            before = state.horizon
            panes = touched[key] = set()
            late = invalid = 0
            for event in events:
                series = state.series_indexes(event.series, event.template)
                held = len(state.chunks)
                late_here, invalid_here = aggregator.accept(
                    state, event.timestamp_ms, event.interval_ms, series, event.values
                )
                late += late_here
                invalid += invalid_here
                if len(state.chunks) > held:
                    panes.add(pane.start_of(event.timestamp_ms))
            tally = counts.setdefault(first.family, [0, 0, 0])
            tally[0] += len(events)
            tally[1] += late
            tally[2] += invalid
            changes.append((state, before))
            self._last_seen[key] = now
        for family, (events_n, late, invalid) in counts.items():
            aggregator.count_event(family, events_n, late, invalid)
        # Reduced and emitted in slices (see close_quiet), every slice before
        # any state is written: a batch of thousands of hosts crossing a
        # window's end closes all their windows, and the reduction's
        # temporaries of them all at once were half the worker's peak memory.
        closed_n = alerts_n = 0
        for part in _slices(changes, _CLOSE_SLICE_SAMPLES):
            closed = aggregator.close(part)
            alerts = self._judge(closed)
            await self._emit(closed, alerts)
            closed_n += len(closed)
            alerts_n += len(alerts)
            del closed, alerts  # before the next slice is reduced
        # One wait for every slice's aggregates, not one per slice: each is a
        # round trip to the broker, and a batch crossing a window's end of
        # many hosts is reduced in several slices.
        if self._stored is not None and (closed_n or alerts_n):
            await self._stored()
        partition_due = self._partition_due
        for key, panes in touched.items():
            state = self._states[key]
            self._save(key, state, panes)
            due = self._due[key] = self._next_due(key, state, now)
            partition = partition_of(key)
            partition_due[partition] = min(partition_due.get(partition, _NEVER), due)
        if self._stored is not None:
            await self._stored()
        return closed_n, alerts_n, rejected

    def _judge(self, closed: ClosedWindows) -> list[AlertEvent]:
        if self.rules is None or not len(closed):
            return []
        alerts: list[AlertEvent] = []
        # Only states the rules could change or fire on: most states are quiet.
        judged = self._rule_columns.states_to_judge(closed)
        if not judged:
            return alerts
        for number, aggregates in sorted(closed.by_state(self._rule_windows, judged).items()):
            alerts += self.rules.evaluate(closed.states[number], aggregates)
        return alerts

    async def close_quiet(
        self,
        partitions: Iterable[int],
        *,
        read_until: Mapping[int, int] | None = None,
        due_only: bool = False,
    ) -> int:
        """Close windows on wall-clock time, run nodata rules, drop states of gone hosts.

        Returns the number of windows closed and alerts raised. Call it only
        for partitions read to their end (see the module docstring).

        Args:
            partitions: the source partitions this worker owns; other keys are
                left to their owner.
            read_until: per partition, the wall time as of which it was read to
                its end, where that is earlier than now (see
                :class:`~streams.caught_up.ReadHorizon`). Its states are judged
                at that time, as if it were now: a message appended since may
                still be unread, and its host's windows must not be closed
                under it. Default: each partition is read to its end now.
            due_only: look only at the states this process knows may be due
                (see :meth:`due_ms`), not at every state in the table: cheap
                enough to run many times a second. States it has not looked
                at yet (taken over in a rebalance, or after a restart) wait
                for a pass without it.
        """
        owned = set(partitions)
        async with self._lock:
            now = self._clock_ms()
            as_of = {p: min(now, (read_until or {}).get(p, now)) for p in owned}
            looked: list[bytes] = []  # keys whose due is computed anew, once closed
            limits: list[tuple[FamilyState, int]] = []
            keys: dict[int, bytes] = {}
            nodata: dict[bytes, list[AlertEvent]] = {}
            expired: list[bytes] = []
            if due_only:
                latest = max(as_of.values(), default=0)
                candidates = sorted(k for k, due in self._due.items() if due <= latest)
            else:
                candidates = self._state_keys()
            for key in candidates:
                clock = as_of.get(partition_of(key))
                if clock is None or self._due.get(key, clock) > clock:
                    continue
                state = self._load(key, "", "")
                if state is None:
                    self._due.pop(key, None)
                    continue
                # The real now: a restarted worker's full quiet period starts here.
                last_seen = self._last_seen.setdefault(key, now)
                quiet_for = clock - last_seen
                if quiet_for >= self._retention_ms and not (state.chunks or state.sketches):
                    expired.append(key)
                    continue
                limit = self._limit(state, last_seen, clock)
                if state.horizon is None or limit - self.aggregator.grace_ms > state.horizon:
                    keys[id(state)] = key
                    limits.append((state, limit))
                if self.rules is not None and quiet_for >= self.aggregator.quiet_after_ms(state):
                    raised = self.rules.check_nodata(state, clock)
                    if raised:
                        nodata[key] = raised
                looked.append(key)
            # In slices, each emitted, acknowledged and written before the next
            # is reduced: after a backlog every state closes at once, and one
            # slice of them all held every aggregate and changelog record in
            # memory together (twice the worker's state at 2,000 hosts).
            parts = _slices(limits, _CLOSE_SLICE_SAMPLES)
            # Nodata alerts go out with the slice that writes their state's alert
            # memory; those of states with nothing to close, with the last slice.
            in_limits = {keys[id(state)] for state, _ in limits}
            changed = sorted(set(nodata) - in_limits)
            closed_n = alerts_n = 0
            with ExitStack() as scope:
                span: Span | None = None
                for number, part in enumerate(parts):
                    closed = self.aggregator.close_at(part)
                    raised = self._judge(closed)
                    for state, _ in part:
                        raised += nodata.get(keys[id(state)], [])
                    if number == len(parts) - 1:
                        for key in changed:
                            raised += nodata[key]
                    # No span for a tick that closed nothing: the timer runs every second.
                    if span is None and (len(closed) or raised) and tracing_enabled():
                        span = scope.enter_context(
                            get_tracer().start_as_current_span(CLOSE_QUIET_SPAN)
                        )
                    await self._emit(closed, raised)
                    if self._stored is not None and (len(closed) or raised):
                        await self._stored()
                    # Every state in a slice moved its horizon.
                    for state, _ in part:
                        self._save(keys[id(state)], state, ())
                    if self._stored is not None and part:
                        await self._stored()
                    closed_n += len(closed)
                    alerts_n += len(raised)
                if span is not None:
                    span.set_attribute("hoststream.windows.closed", closed_n)
                    span.set_attribute("hoststream.alerts.raised", alerts_n)
            # Nodata rules changed the alert memory of these too.
            for key in changed:
                self._save(key, self._states[key], ())
            for key in looked:
                self._due[key] = self._next_due(key, self._states[key], self._last_seen[key])
            for key in expired:
                self._drop(key)
            earliest_due = dict.fromkeys(owned, _NEVER)
            for key, due in self._due.items():
                partition = partition_of(key)
                if partition in earliest_due and due < earliest_due[partition]:
                    earliest_due[partition] = due
            self._partition_due.update(earliest_due)
            if self._stored is not None and (changed or expired):
                await self._stored()
            if expired:
                self.aggregator.metrics.states_expired.inc(len(expired))
            self._update_gauges(now)
            return closed_n + alerts_n

    def _state_keys(self) -> list[bytes]:
        """Every state's key in the table, sorted.

        Read anew only when the table's size changed: a pass every second over
        the keys of all states' records (header, series, segments) cost about
        a twentieth of a worker's CPU at 800 hosts. States this process creates
        get a due time at once, so the pass is for those it took over, which
        come with their records and change the size.
        """
        size = len(self.table)
        if self._scanned is None or self._scanned[0] != size:
            self._scanned = (size, sorted(k for k in list(self.table.keys()) if is_state_key(k)))
        return self._scanned[1]

    def _limit(self, state: FamilyState, last_seen: int, now: int) -> int:
        """How far wall time ``now`` lets ``state``'s windows close (before grace is subtracted).

        ``now`` may be before ``last_seen`` (a partition read to its end as of
        an earlier time): the limit is then below the watermark, and closes nothing.
        """
        if now - last_seen >= self.aggregator.quiet_after_ms(state) or state.watermark is None:
            return now
        # The host's event time, run on with the wall clock since its last
        # event, and never ahead of the wall clock.
        return min(now, state.watermark + (now - last_seen))

    def _next_due(self, key: bytes, state: FamilyState, last_seen: int) -> int:
        """When a wall-clock close, nodata alert or expiry of ``state`` may first be due."""
        candidates = []
        close_at = self.aggregator.next_close_ms(state)
        if close_at is not None:
            quiet_at = max(close_at, last_seen + self.aggregator.quiet_after_ms(state))
            lag = 0 if state.watermark is None else max(0, last_seen - state.watermark)
            candidates.append(min(quiet_at, close_at + lag))
        if self.rules is not None:
            nodata_at = self.rules.next_due_ms(state)
            if nodata_at is not None:
                candidates.append(max(nodata_at, last_seen + self.aggregator.quiet_after_ms(state)))
        if not (state.chunks or state.sketches):
            candidates.append(last_seen + self._retention_ms)
        return min(candidates) if candidates else _NEVER

    def _update_gauges(self, now: int) -> None:
        if now - self._gauges_at < _GAUGES_EVERY_MS:
            return
        self._gauges_at = now
        metrics = self.aggregator.metrics
        metrics.state_series.set(sum(len(s.series) for s in self._states.values()))
        metrics.state_bytes.set(sum(s.state_bytes() for s in self._states.values()))


_Limit = TypeVar("_Limit", int, int | None)


def _slices(
    limits: Sequence[tuple[FamilyState, _Limit]], samples: int
) -> list[Sequence[tuple[FamilyState, _Limit]]]:
    """``limits`` cut in order into runs holding about ``samples`` samples; at least one run."""
    out: list[Sequence[tuple[FamilyState, _Limit]]] = []
    begin = held = 0
    for end, (state, _) in enumerate(limits, start=1):
        held += state.open_samples
        if held >= samples:
            out.append(limits[begin:end])
            begin, held = end, 0
    if begin < len(limits) or not out:
        out.append(limits[begin:])
    return out


def _headers(message: SourceMessage) -> KafkaHeaders:
    # Not part of SourceMessage: the processor works without them (tests, and
    # tracing off), and Faust's Message has them as a list or a mapping.
    return cast(KafkaHeaders, getattr(message, "headers", None))


def _legacy_state_message(key: bytes) -> str:
    # Open windows of the JSON state cannot be carried into the binary one without
    # changing their results, so the worker stops rather than emit partial windows.
    return (
        f"the window table holds state of {key.decode('utf-8', 'replace')!r} in the JSON "
        "format of an earlier hoststream, which this version does not read: let the old "
        "workers close their open windows, then start this version with a new "
        "HOSTSTREAM_STREAM_APP_ID (for the local stack, `make clean` starts afresh)"
    )

"""Metric events straight from their Avro bytes into ``/api/v1/import`` lines.

A host sends the same series in the same order at every collection: of an
event's bytes only the header (timestamp, sequence number) and the 8-byte
sample values change. The first event of a host and family, and any event
whose shape changed, is decoded in full by the topic's deserializer; its
layout then becomes a :class:`EventShape`: the bytes between the values, and
each series' JSON prefix, validated once. Later events of that shape are
read with one ``struct`` call that yields the fixed bytes (compared with the
shape's) and the values, so no object is built per sample.

A batch is encoded series by series: each series gets one JSON line with
all its values and timestamps of the batch, which is also the cheapest form
for VictoriaMetrics to parse.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import orjson
from confluent_kafka.serialization import SerializationContext

from hoststream.errors import SerializationError
from hoststream.schemas import (
    AvroReader,
    MetricEvent,
    MetricKind,
    RecordDeserializer,
    WindowAggregate,
    event_layout,
    written_layout,
)
from hoststream.schemas.validation import Validator
from hoststream.sinks.aggregate_reader import AggregateValues
from hoststream.sinks.vm_aggregates import aggregate_import_lines
from hoststream.sinks.vm_series import (
    TimeBounds,
    aggregate_lines,
    event_lines,
    merged_labels,
    target_labels,
)

__all__ = [
    "EventColumns",
    "EventShape",
    "EventValues",
    "MetricEventReader",
    "check_values",
    "import_body",
    "import_line_prefixes",
    "split_records",
]

#: Length of the value prefix before the Avro body, by its first byte.
_CONFLUENT_HEADER = 5  # 0x00, 4-byte schema id
_SINGLE_OBJECT_HEADER = 10  # C3 01, 8-byte fingerprint
_LONG_PREFIX = 0xC3
#: An event's instant, interval and sequence number after its family: three
#: Avro varints (bytes with the top bit set, then one without); the first captured.
_THREE_LONGS = re.compile(
    rb"([\x80-\xff]*[\x00-\x7f])[\x80-\xff]*[\x00-\x7f][\x80-\xff]*[\x00-\x7f]"
)


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class EventShape:
    """The layout of a host's events of one family, and what the sink derived from it.

    Attributes:
        host: the host id.
        unpack: reads the samples part of an event: fixed chunks and values, alternating.
        size: bytes of that part.
        chunks: the fixed bytes between the values, which must match.
        derived: what the reading sink computes once per shape for writing
            its series (:func:`import_line_prefixes`, or a remote-write
            :class:`~sinks.vm_remote_write.SeriesTemplate`).
        template: the event the shape was learned from.
        values: the template's values (``float64``).
        expected: the samples part of the template's bytes (its values
            included), against which a batch of events is checked at once.
        value_offsets: the offset in that part of each value, as native
            ``int32``; where :meth:`MetricEventReader.read_many` reads them.
        counters: one byte per value, 1 for a counter (not negative).
    """

    host: str
    unpack: Callable[[bytes, int], tuple[Any, ...]]
    size: int
    chunks: tuple[bytes, ...]
    derived: Any
    template: MetricEvent
    values: np.ndarray[Any, np.dtype[np.float64]]
    expected: bytes
    value_offsets: bytes
    counters: bytes


class EventValues(NamedTuple):
    """One metric event as the VictoriaMetrics sink keeps it: its shape, instant and
    where its values are.

    The values of a batch's events stay in one ``float64`` array, ``block``,
    from their bytes to the request body: no Python float is made per sample
    (:func:`split_records` gathers them by series). Every event made by
    :class:`MetricEventReader` has finite values and no negative counter; one
    that has not is decoded in full, for the validation contract to refuse.

    A named tuple, not a frozen dataclass: one is made per message, and a
    tuple is made in a fraction of the time.
    """

    shape: EventShape
    timestamp_ms: int
    #: The values of the events read with this one (or its own alone).
    block: np.ndarray[Any, np.dtype[np.float64]]
    #: Where its values start in ``block``.
    first: int

    @property
    def host(self) -> str:
        return self.shape.host

    @property
    def values(self) -> tuple[float, ...]:
        """Its values, in its shape's order of series."""
        return tuple(self.block[self.first : self.first + len(self.shape.counters)].tolist())

    def finite(self) -> bool:
        """Whether its values are all finite: always, as the reader makes them."""
        return True

    def event(self) -> MetricEvent:
        """The whole event (its interval and sequence number are its shape's first event's)."""
        template = self.shape.template
        if self.block is self.shape.values and self.timestamp_ms == template.timestamp_ms:
            return template  # the event the shape was learned from, as the validator's first
        samples = tuple(
            replace(sample, value=value)
            for sample, value in zip(template.samples, self.values, strict=True)
        )
        return replace(template, timestamp_ms=self.timestamp_ms, samples=samples)

    def header(self) -> MetricEvent:
        """The event without its samples."""
        return replace(self.shape.template, timestamp_ms=self.timestamp_ms, samples=())


def import_line_prefixes(event: MetricEvent) -> tuple[bytes, ...]:
    """Each sample's import line up to and including ``"values":``.

    Labelled as :func:`~hoststream.sinks.vm_series.series_labels` labels it,
    with the target's labels made once per event.
    """
    target = target_labels(event.host, event.region)
    host_labels = event.host_labels
    prefixes: list[bytes] = []
    for sample in event.samples:
        labels = merged_labels(target, host_labels, sample.labels)
        prefixes.append(orjson.dumps({"metric": {"__name__": sample.name, **labels}})[:-1])
    return tuple(p + b',"values":' for p in prefixes)


def _shape_of(
    data: bytes, start: int, event: MetricEvent, derive: Callable[[MetricEvent], Any]
) -> EventShape:
    """The shape of ``event``, whose host labels start at ``data[start]``."""
    layout = written_layout(data, start, event)
    if layout is None:
        layout = event_layout(data, start)
    if len(layout.chunks) != len(event.samples) + 1:
        raise SerializationError("the event's layout is not the one hoststream writes")
    values = np.array([s.value for s in event.samples], np.float64)
    offsets: list[int] = []
    at = 0
    for chunk in layout.chunks[:-1]:
        at += len(chunk)
        offsets.append(at)
        at += 8
    counters = bytes(s.kind is MetricKind.COUNTER for s in event.samples)
    return EventShape(
        event.host,
        layout.unpack,
        layout.size,
        layout.chunks,
        derive(event),
        event,
        values,
        data[start:],
        np.array(offsets, np.int32).tobytes(),
        counters,
    )


class MetricEventReader:
    """Decodes metric events into :class:`EventValues`, learning each host's event shape.

    Args:
        deserializer: decodes a value in full (the topic's Avro deserializer);
            used for an event of a shape not seen yet, and for every event
            written with another schema version than the current one.
        max_shapes: shapes remembered; beyond that the oldest are forgotten.
        validator: the validation contract; an event that breaks it is handed
            on whole (for the consumer's validator to refuse), its shape not
            learned. Default: the contract's default limits.
        derive: what a shape keeps for writing its series, computed from
            its first event (default: :func:`import_line_prefixes`).
    """

    def __init__(
        self,
        deserializer: RecordDeserializer[MetricEvent],
        *,
        max_shapes: int = 100_000,
        validator: Validator | None = None,
        derive: Callable[[MetricEvent], Any] = import_line_prefixes,
    ) -> None:
        self._deserialize = deserializer
        self._derive = derive
        self._max_shapes = max_shapes
        self._shapes: dict[bytes, EventShape] = {}
        self._validator = validator if validator is not None else Validator()
        self._last_instant: tuple[bytes, int] = (b"", 0)

    def __call__(
        self, data: bytes | None, ctx: SerializationContext | None = None, /
    ) -> EventValues | MetricEvent:
        """The event's values by a known shape, else the fully decoded event.

        Raises:
            SerializationError: the bytes are no metric event of a known schema.
        """
        if not data:
            return self._deserialize(data, ctx)  # it raises the precise error
        try:
            key, start, timestamp_ms = self._header(data)
        except IndexError:
            return self._deserialize(data, ctx)  # it raises the precise error
        shape = self._shapes.get(key)
        if shape is not None and shape.size == len(data) - start:
            parts = shape.unpack(data, start)
            if parts[0::2] == shape.chunks:
                values = np.array(parts[1::2], np.float64)
                if not _refused(values, np.frombuffer(shape.counters, np.bool_)).any():
                    return EventValues(shape, timestamp_ms, values, 0)
                # Decoded in full, for the validation contract to refuse.
                return self._deserialize(data, ctx)
        return self._learn(data, ctx, key, start, timestamp_ms)

    def read_many(
        self,
        values: Sequence[bytes | None],
        context: Callable[[int], SerializationContext | None],
    ) -> list[EventValues | MetricEvent | Exception]:
        """:meth:`__call__` for each of ``values``, the events of known shapes read at once.

        Their values are gathered from all their bytes by one index, their
        fixed bytes checked by one comparison with their shapes' own, and
        their values judged in bulk: an event whose values are not finite, or
        a counter's negative, is decoded in full for the validation contract
        to name what is wrong with it.

        Args:
            values: message values.
            context: the serialization context of ``values[i]``, made only
                for a value that is decoded in full.

        Returns:
            Per value, what :meth:`__call__` returns, or the
            :class:`~hoststream.errors.SerializationError` it raised.

        Raises:
            SchemaRegistryUnavailableError: decoding should be retried.
        """
        out: list[Any] = [None] * len(values)
        # Events of a known shape: their index, shape, instant and samples part.
        at: list[int] = []
        shapes: list[EventShape] = []
        instants: list[int] = []
        parts: list[bytes] = []
        known = self._shapes
        for i, data in enumerate(values):
            try:
                if not data:
                    out[i] = self(data, context(i))
                    continue
                try:
                    key, start, timestamp_ms = self._header(data)
                except IndexError:
                    out[i] = self(data, context(i))  # it raises the precise error
                    continue
                shape = known.get(key)
                if shape is not None and shape.size == len(data) - start:
                    at.append(i)
                    shapes.append(shape)
                    instants.append(timestamp_ms)
                    parts.append(data[start:])
                else:
                    out[i] = self._learn(data, context(i), key, start, timestamp_ms)
            except SerializationError as exc:
                out[i] = exc
        if at:
            block, firsts = _values_by_shape(shapes, parts)
            for i, shape, timestamp_ms, first in zip(at, shapes, instants, firsts, strict=True):
                if first is not None:
                    out[i] = EventValues(shape, timestamp_ms, block, first)
                    continue
                try:  # rare: read it alone, as a shape changed or for the contract to judge
                    out[i] = self(values[i], context(i))
                except SerializationError as exc:
                    out[i] = exc
        return out

    def _header(self, data: bytes) -> tuple[bytes, int, int]:
        """The shape key (schema, host, family), where the samples part starts, the instant.

        Raises:
            IndexError: the bytes end inside the header.
        """
        header = _SINGLE_OBJECT_HEADER if data[0] == _LONG_PREFIX else _CONFLUENT_HEADER
        # Host and family: strings shorter than 64 bytes have a one-byte
        # length (zig-zag, so even); read here without a reader object.
        size = data[header]
        key_end = header + 1 + (size >> 1)
        family_size = data[key_end]
        if (size | family_size) & 0x81:
            reader = AvroReader(data, header)
            reader.string()  # host
            reader.string()  # family
            key_end = reader.pos
        else:
            key_end += 1 + (family_size >> 1)
        # Instant, interval and sequence number: three varints.
        longs = _THREE_LONGS.match(data, key_end)
        if longs is None:
            raise IndexError("the event's header runs past the end")
        instant = longs.group(1)
        if instant == self._last_instant[0]:
            timestamp_ms = self._last_instant[1]  # one tick's events share it
        else:
            timestamp_ms = AvroReader(instant, 0).long()
            self._last_instant = (instant, timestamp_ms)
        # Schema, host and family; not the instant or sequence number. The
        # host labels need no reading: the shape's fixed bytes hold them.
        return data[:key_end], longs.end(), timestamp_ms

    def _learn(
        self,
        data: bytes,
        ctx: SerializationContext | None,
        key: bytes,
        start: int,
        timestamp_ms: int,
    ) -> EventValues | MetricEvent:
        """Decode ``data`` in full and learn its shape, if it has one to learn."""
        event = self._deserialize(data, ctx)
        # Names and labels judged once per shape, by the contract (its clock:
        # the event's own instant; the consumer's validator judges that).
        if self._validator.check_event(event, None, event.timestamp_ms) is not None:
            return event
        try:
            shape = _shape_of(data, start, event, self._derive)
        except (IndexError, SerializationError, struct.error):
            return event  # bytes not in the layout hoststream writes: read in full
        # The layout must find each of the decoded event's values where it
        # reads them. Later events of the shape repeat every other byte, so
        # they decode to the same series with their own values; bytes laid
        # out otherwise (another writer, another schema) are read in full.
        if shape.unpack(data, start)[1::2] != tuple(shape.values.tolist()):
            return event
        if key not in self._shapes and len(self._shapes) >= self._max_shapes:
            self._shapes.pop(next(iter(self._shapes)))
        self._shapes[key] = shape
        return EventValues(shape, timestamp_ms, shape.values, 0)


def _refused(
    values: np.ndarray[Any, np.dtype[np.float64]], counters: np.ndarray[Any, np.dtype[np.bool_]]
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per value, whether it is not finite or a counter's below zero: then the
    validation contract judges its whole event."""
    refused: np.ndarray[Any, np.dtype[np.bool_]] = ~np.isfinite(values) | (counters & (values < 0))
    return refused


def _values_by_shape(
    shapes: Sequence[EventShape], parts: Sequence[bytes]
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], list[int | None]]:
    """The values of every samples part in ``parts`` read by its shape, in one array,
    and where each part's start in it, or None.

    None: the part's fixed bytes are not its shape's (a label changed, its
    length not), or a value is not finite or a counter's is negative.
    """
    data = b"".join(parts)
    sizes = np.fromiter((s.size for s in shapes), np.int64, len(shapes))
    counts = np.fromiter((len(s.counters) for s in shapes), np.int64, len(shapes))
    starts = np.cumsum(sizes) - sizes
    # Where every value of every part starts: each shape's offsets plus its part's start.
    offsets = np.frombuffer(b"".join(s.value_offsets for s in shapes), np.int32) + np.repeat(
        starts, counts
    )
    values = _doubles_at_every_byte(data)[offsets]
    # The shapes' own bytes with these values pasted in must be these bytes.
    expected = bytearray().join(s.expected for s in shapes)
    _doubles_at_every_byte(expected)[offsets] = values
    wrong = np.zeros(len(shapes), np.bool_)
    if expected != data:  # one memcmp
        differs = np.flatnonzero(np.frombuffer(expected, np.uint8) != np.frombuffer(data, np.uint8))
        wrong[np.searchsorted(starts, differs, side="right") - 1] = True
    counters = np.frombuffer(b"".join(s.counters for s in shapes), np.bool_)
    bad = _refused(values, counters)
    if bad.any():
        ends = np.cumsum(counts)
        wrong[np.searchsorted(ends, np.flatnonzero(bad), side="right")] = True
    firsts: list[int | None] = (np.cumsum(counts) - counts).tolist()
    if wrong.any():
        for n in np.flatnonzero(wrong).tolist():
            firsts[n] = None
    return values, firsts


def _doubles_at_every_byte(buffer: bytes | bytearray) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A view of ``buffer`` with a little-endian double starting at each of its bytes.

    Avro doubles sit at any offset: indexing this view reads (or writes)
    each of them with one gather, not eight bytes apiece.
    """
    return np.ndarray((max(0, len(buffer) - 7),), "<f8", buffer, 0, (1,))


def check_values(values: EventValues, bounds: TimeBounds) -> None:
    """Raise :class:`~hoststream.errors.InvalidRecordError` if VictoriaMetrics would drop them.

    Only its retention and clock: the values themselves (finite) are the
    validation contract's, judged by the consumer's validator.
    """
    bounds.check(values.timestamp_ms, "timestamp_ms")


class EventColumns(NamedTuple):
    """A batch's events read by shape, by shape: instants, and values by series.

    Attributes:
        values: the values of the events' blocks, one block after another
            (the very block when all were read together).
        by_shape: per shape, its events' instants and where each event's
            values start in ``values``, in the batch's order.
    """

    values: np.ndarray[Any, np.dtype[np.float64]]
    by_shape: dict[EventShape, tuple[list[int], list[int]]]

    def by_series(
        self, shapes: Sequence[EventShape]
    ) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.intp]]]:
        """The values of ``shapes``' events in series order, gathered at once.

        Shape after shape: its first series' values for all its events (in
        the batch's order), then its second series'... Also, per value, its
        event's place among all ``shapes``' events, shape after shape (where
        its instant is in their concatenated instants).
        """
        by_shape = self.by_shape
        events = np.fromiter((len(by_shape[s][1]) for s in shapes), np.int64, len(shapes))
        series = np.fromiter((len(s.counters) for s in shapes), np.int64, len(shapes))
        firsts = np.fromiter(
            chain.from_iterable(by_shape[s][1] for s in shapes), np.intp, int(events.sum())
        )
        # Value j: its shape, then its series and event in that shape.
        sizes = events * series
        shape_of = np.repeat(np.arange(len(shapes)), sizes)
        within = np.arange(int(sizes.sum())) - (np.cumsum(sizes) - sizes)[shape_of]
        series_of, event_of = np.divmod(within, events[shape_of])
        event_at = (np.cumsum(events) - events)[shape_of] + event_of
        return self.values[firsts[event_at] + series_of], event_at

    def events(self) -> Iterator[EventValues]:
        """Each event, shape by shape."""
        for shape, (instants, firsts) in self.by_shape.items():
            for timestamp_ms, first in zip(instants, firsts, strict=True):
                yield EventValues(shape, timestamp_ms, self.values, first)


def split_records(
    records: Iterable[EventValues | AggregateValues | MetricEvent | WindowAggregate],
) -> tuple[EventColumns, list[AggregateValues], list[MetricEvent | WindowAggregate]]:
    """A batch as the sink writes it: events read by shape, as columns by shape,
    aggregates read by shape, and records decoded in full."""
    by_shape: dict[EventShape, tuple[list[int], list[int]]] = {}
    aggregates: list[AggregateValues] = []
    objects: list[MetricEvent | WindowAggregate] = []
    # Where each block starts in the columns' values; the blocks list keeps
    # every one alive, so no id is reused meanwhile.
    starts: dict[int, int] = {}
    blocks: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    size = 0
    for record in records:
        if isinstance(record, EventValues):
            block = record.block
            start = starts.get(id(block))
            if start is None:
                start = starts[id(block)] = size
                blocks.append(block)
                size += len(block)
            entry = by_shape.get(record.shape)
            if entry is None:
                entry = by_shape[record.shape] = ([], [])
            entry[0].append(record.timestamp_ms)
            entry[1].append(start + record.first)
        elif isinstance(record, AggregateValues):
            aggregates.append(record)
        else:
            objects.append(record)
    if len(blocks) == 1:
        values = blocks[0]
    else:
        values = np.concatenate(blocks) if blocks else np.empty(0, np.float64)
    return EventColumns(values, by_shape), aggregates, objects


def import_body(
    records: Iterable[EventValues | AggregateValues | MetricEvent | WindowAggregate],
) -> bytes:
    """JSON lines for ``/api/v1/import``: one line per series of events of a known shape."""
    columns, shaped_aggregates, objects = split_records(records)
    lines: list[bytes] = []
    for record in objects:
        more = event_lines(record) if isinstance(record, MetricEvent) else aggregate_lines(record)
        lines += (orjson.dumps(line) + b"\n" for line in more)
    shapes = [shape for shape in columns.by_shape if shape.derived]
    values = columns.by_series(shapes)[0].tolist()
    at = 0
    for shape in shapes:
        timestamps = columns.by_shape[shape][0]
        events = len(timestamps)
        # One orjson call for the shape's whole column matrix, split at its
        # "],[" seams (values are numbers, so they hold none): orjson's cost
        # per call outweighs its cost per value for columns of a few values.
        tail = b'],"timestamps":' + orjson.dumps(timestamps) + b"}\n"
        matrix = orjson.dumps(
            [
                values[start : start + events]
                for start in range(at, at + len(shape.derived) * events, events)
            ]
        )
        at += len(shape.derived) * events
        for prefix, column in zip(shape.derived, matrix[2:-2].split(b"],["), strict=True):
            lines += (prefix, b"[", column, tail)
    lines += aggregate_import_lines(shaped_aggregates)
    return b"".join(lines)

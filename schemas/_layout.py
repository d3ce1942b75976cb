"""The byte layout of a MetricEvent's Avro body, for reading and writing it by shape.

A host sends the same series in the same order at every collection: of an
event's body only the instant, the sequence number and the 8-byte sample
values change. :func:`event_layout` finds where those are, so the producer
can write (:class:`MetricEventBodies`) and the VictoriaMetrics sink read an
event with one ``struct`` call instead of a pass over every sample.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from confluent_kafka.serialization import SerializationContext

from hoststream.schemas._codec import encode
from hoststream.schemas._event_writer import fixed_parts
from hoststream.schemas._loader import AvroSchema, schema_for
from hoststream.schemas._varint import zigzag
from hoststream.schemas.records import EventValues, MetricEvent

if TYPE_CHECKING:
    from hoststream.schemas._batch import BatchImage

log = logging.getLogger(__name__)

__all__ = [
    "AvroReader",
    "EventLayout",
    "MetricEventBodies",
    "batch_image",
    "bodies_for",
    "event_layout",
    "written_layout",
    "zigzag",
]


class AvroReader:
    """Reads Avro's binary encoding: zig-zag varints, strings, maps of strings."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def long(self) -> int:
        data, pos = self.data, self.pos
        byte = data[pos]
        pos += 1
        n = byte & 0x7F
        shift = 7
        while byte & 0x80:
            byte = data[pos]
            pos += 1
            n |= (byte & 0x7F) << shift
            shift += 7
        self.pos = pos
        return (n >> 1) ^ -(n & 1)

    def string(self) -> bytes:
        size = self.long()
        start = self.pos
        self.pos = start + size
        if size < 0 or self.pos > len(self.data):
            raise IndexError("string runs past the end")
        return self.data[start : self.pos]

    def skip_map(self) -> None:
        """Skip a map of strings, in any block layout."""
        while True:
            count = self.long()
            if count == 0:
                return
            if count < 0:  # a block with its size in bytes: skip it whole
                size = self.long()
                self.pos += size
                continue
            for _ in range(2 * count):
                size = self.long()  # not `pos += long()`: that adds to the old pos
                self.pos += size


@dataclass(frozen=True, slots=True)
class EventLayout:
    """Where the values of an event's samples lie, from the end of ``seq`` to the body's end.

    Attributes:
        unpack: reads that part from ``(data, offset)``: fixed chunks and values, alternating.
        pack: writes it from the same alternating arguments.
        size: bytes of that part.
        chunks: the fixed bytes around the values (host labels, names, labels).
    """

    unpack: Callable[[bytes, int], tuple[Any, ...]]
    pack: Callable[..., bytes]
    size: int
    chunks: tuple[bytes, ...]


def event_layout(body: bytes, start: int) -> EventLayout:
    """The layout of the event body ``body`` whose ``host_labels`` start at ``body[start]``.

    The bytes after the samples (the optional region) count as fixed.

    Raises:
        IndexError: ``body`` is no MetricEvent body in the current schema's layout.
    """
    reader = AvroReader(body, start)
    reader.skip_map()  # host_labels
    offsets: list[int] = []
    while True:
        count = reader.long()
        if count == 0:
            break
        if count < 0:
            count = -count
            reader.long()  # the block's size in bytes
        for _ in range(count):
            reader.string()  # name
            reader.long()  # kind
            offsets.append(reader.pos)
            reader.pos += 8  # value
            reader.skip_map()  # labels
    if reader.pos > len(body):
        raise IndexError("the samples run past the end")
    # What follows the samples (the region) is as fixed per shape as the labels.
    chunks: list[bytes] = []
    previous = start
    for offset in offsets:
        chunks.append(body[previous:offset])
        previous = offset + 8
    chunks.append(body[previous:])
    layout = _chunks_struct(chunks)
    return EventLayout(layout.unpack_from, layout.pack, layout.size, tuple(chunks))


def written_layout(body: bytes, start: int, event: MetricEvent) -> EventLayout | None:
    """The layout of ``event`` as hoststream writes it, if ``body[start:]`` is exactly that.

    Derived from the decoded event (its names and labels encoded once per
    fleet, :func:`~hoststream.schemas.fixed_parts`) instead of read from the
    bytes varint by varint: a third of the cost of learning a shape. The
    bytes must be what the layout writes with the event's values, so any
    other writer's layout (blocks, map order) is left to :func:`event_layout`.
    """
    try:
        _head, chunks = fixed_parts(event)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    layout = _chunks_struct(chunks)
    args = _pack_args(chunks)
    args[1::2] = [float(s.value) for s in event.samples]
    if layout.size != len(body) - start or layout.pack(*args) != body[start:]:
        return None
    return EventLayout(layout.unpack_from, layout.pack, layout.size, chunks)


def _chunks_struct(chunks: Sequence[bytes]) -> struct.Struct:
    """The ``struct`` that writes ``chunks`` with a little-endian double between each two."""
    fmt = "".join(f"{len(chunk)}sd" for chunk in chunks[:-1])
    return struct.Struct(f"<{fmt}{len(chunks[-1])}s")


def _pack_args(chunks: Sequence[bytes]) -> list[Any]:
    """The arguments of :func:`_chunks_struct`'s ``pack``: the chunks, values still to fill in."""
    args: list[Any] = [None] * (2 * len(chunks) - 1)
    args[0::2] = chunks
    return args


@dataclass(frozen=True, slots=True)
class _Shape:
    head: bytes  # host and family, encoded
    host_labels: Any
    region: str | None
    series: list[tuple[Any, ...]]  # (name, kind, labels) per sample
    args: list[Any]  # the layout's pack arguments, values to fill in
    pack: Callable[..., bytes]
    #: The EventValues template last written with this shape: known to match it.
    template: MetricEvent | None = None


def _body(shape: _Shape, event: MetricEvent) -> bytes:
    """``event``'s body written by ``shape``: its instant, interval, sequence number and values."""
    args = shape.args.copy()
    args[1::2] = [float(s.value) for s in event.samples]
    return b"".join(
        (
            shape.head,
            zigzag(event.timestamp_ms),
            zigzag(event.interval_ms),
            zigzag(event.seq),
            shape.pack(*args),
        )
    )


class MetricEventBodies:
    """Avro bodies of metric events, written by each host and family's learned layout.

    The first event of a shape is encoded by fastavro and its layout kept;
    later events whose series are the same (names, kinds, labels, host
    labels) are written with one ``struct`` call: the same bytes, at a
    fraction of the cost.

    Args:
        schema: the current MetricEvent schema (the writer schema).
        max_shapes: shapes remembered; beyond that the oldest are forgotten.
    """

    __slots__ = ("_checked", "_direct", "_instant", "_max_shapes", "_schema", "_shapes")

    def __init__(self, schema: AvroSchema, *, max_shapes: int = 100_000) -> None:
        self._schema = schema
        self._max_shapes = max_shapes
        self._shapes: dict[tuple[str, str], _Shape] = {}
        # (timestamp_ms, interval_ms) -> both encoded: a fleet's tick writes the
        # same instant into every event.
        self._instant: tuple[int, int, bytes] = (-1, -1, b"")
        # Shapes are written straight from the event (schemas._event_writer);
        # the first event of each family is checked against fastavro's bytes,
        # and a difference goes back to learning from fastavro for good.
        self._direct = True
        self._checked: set[str] = set()

    def __call__(self, event: MetricEvent, ctx: SerializationContext | None) -> bytes:
        samples = event.samples
        shape = self._shapes.get((event.host, event.family))
        if (
            shape is not None
            and shape.host_labels == event.host_labels
            and shape.region == event.region
            and shape.series == [(s.name, s.kind, s.labels) for s in samples]
        ) or (shape := self._written_shape(event, ctx)) is not None:
            return _body(shape, event)
        body = encode(b"", self._schema, event, ctx)
        self._learn(event, body)
        return body

    def _written_shape(self, event: MetricEvent, ctx: SerializationContext | None) -> _Shape | None:
        """``event``'s shape written straight from it, and kept; None: learn it from fastavro."""
        if not self._direct:
            return None
        try:
            head, chunks = fixed_parts(event)
        except (AttributeError, KeyError, TypeError, ValueError):
            return None  # fastavro says what is wrong with it
        shape = _Shape(
            head,
            dict(event.host_labels),
            event.region,
            [(s.name, s.kind, dict(s.labels)) for s in event.samples],
            _pack_args(chunks),
            _chunks_struct(chunks).pack,
        )
        if event.family not in self._checked:
            if _body(shape, event) != encode(b"", self._schema, event, ctx):
                log.warning(
                    "a %s event written directly differs from fastavro's encoding: "
                    "learning every layout from fastavro",
                    event.family,
                )
                self._direct = False
                return None
            self._checked.add(event.family)
        if len(self._shapes) >= self._max_shapes:
            self._shapes.pop(next(iter(self._shapes)))
        self._shapes[(event.host, event.family)] = shape
        return shape

    def values_body(self, values: EventValues, ctx: SerializationContext | None) -> bytes:
        """The body of ``values.event()``, written without building it.

        The shape is matched to the template once (by comparing its series);
        later events of the same template object cost one ``struct`` call.
        """
        template = values.template
        key = (template.host, template.family)
        shape = self._shapes.get(key)
        numbers = values.values
        if (
            shape is not None
            and shape.template is template
            and 2 * len(numbers) + 1 == len(shape.args)
        ):
            args = shape.args.copy()
            args[1::2] = numbers
            instant = self._instant
            if instant[0] != values.timestamp_ms or instant[1] != template.interval_ms:
                instant = self._instant = (
                    values.timestamp_ms,
                    template.interval_ms,
                    zigzag(values.timestamp_ms) + zigzag(template.interval_ms),
                )
            return b"".join((shape.head, instant[2], zigzag(values.seq), shape.pack(*args)))
        body = self(values.event(), ctx)
        # The shape under the key now matches the template's series: learned or compared.
        shape = self._shapes.get(key)
        if shape is not None:
            self._shapes[key] = replace(shape, template=template)
        return body

    def learned(self, template: MetricEvent) -> tuple[bytes, tuple[bytes, ...]] | None:
        """(head, the fixed chunks around the values) of ``template``'s shape.

        None unless an event of ``template`` itself was written
        (:meth:`values_body`), which proved the shape matches its series.
        """
        shape = self._shapes.get((template.host, template.family))
        if shape is None or shape.template is not template:
            return None
        return shape.head, tuple(shape.args[0::2])

    def _learn(self, event: MetricEvent, body: bytes) -> None:
        reader = AvroReader(body, 0)
        reader.string()
        reader.string()
        head = body[: reader.pos]
        reader.long()
        reader.long()
        reader.long()
        layout = event_layout(body, reader.pos)
        args = _pack_args(layout.chunks)
        if len(self._shapes) >= self._max_shapes:
            self._shapes.pop(next(iter(self._shapes)))
        self._shapes[(event.host, event.family)] = _Shape(
            head,
            dict(event.host_labels),
            event.region,
            [(s.name, s.kind, dict(s.labels)) for s in event.samples],
            args,
            layout.pack,
        )


def bodies_for(record_type: type[Any], schema: AvroSchema) -> MetricEventBodies | None:
    """A :class:`MetricEventBodies` when ``schema`` is the current MetricEvent schema."""
    if (
        record_type is not MetricEvent
        or schema.canonical_form != schema_for(MetricEvent).canonical_form
    ):
        return None
    return MetricEventBodies(schema)


def batch_image(
    bodies: MetricEventBodies | None,
    templates: Sequence[MetricEvent],
    prefixes: Sequence[bytes | None],
) -> BatchImage | None:
    """A :class:`~schemas._batch.BatchImage` of ``templates``' events, each after its prefix.

    None when a prefix is not known yet or a template's layout was not learned
    from an event of that template (:meth:`MetricEventBodies.values_body`).
    """
    if bodies is None:
        return None
    heads: list[bytes] = []
    chunks: list[tuple[bytes, ...]] = []
    known: list[bytes] = []
    for template, prefix in zip(templates, prefixes, strict=True):
        learned = bodies.learned(template)
        if learned is None or prefix is None:
            return None
        heads.append(learned[0])
        chunks.append(learned[1])
        known.append(prefix)
    # NumPy only here: the real-host agent never writes batches.
    from hoststream.schemas._batch import BatchImage

    return BatchImage(known, heads, chunks, [t.interval_ms for t in templates])

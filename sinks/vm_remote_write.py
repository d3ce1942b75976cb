"""Metric events and window aggregates as a Prometheus remote-write request.

VictoriaMetrics parses a remote-write ``WriteRequest`` (protobuf, snappy;
``POST /api/v1/write``) for about two thirds of the CPU it spends on the
same values as JSON import lines when each series carries one value per
request, which is what a live sink sends (``bench/vm_formats.py``), and for
the same CPU when each series carries many (a backlog).

The messages, as VictoriaMetrics and Prometheus define them::

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }

Every sample of hoststream's is 18 bytes: its field's tag and length, the
double's tag and 8 bytes, the timestamp's tag and its varint, which is 6
bytes for every millisecond instant from 1971 to 2109 (other instants are
written one by one, the slow way). So a series' bytes are its labels, fixed
once per series, and samples at fixed places:

- a host's event shape keeps a :class:`SeriesTemplate`: each of its series as
  a ``TimeSeries`` with one sample; the events of a batch that are their
  shape's only event in it are written by copying their templates and
  pasting every value and instant at once (NumPy);
- a shape with several events in the batch has one ``TimeSeries`` per series
  holding all of them, as VictoriaMetrics parses cheapest;
- window aggregates keep, per statistic, their series' bytes up to the sample
  (:func:`aggregate_heads`, the :class:`~sinks.aggregate_reader.AggregateReader`'s
  ``derive``).

Names and labels are those of :func:`sinks.vm_series.event_lines` and
:func:`sinks.vm_series.aggregate_lines`, ``__name__`` first, the others
sorted by name.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from hoststream.schemas import MetricEvent, WindowAggregate
from hoststream.sinks.aggregate_reader import AggregateSeries, AggregateValues
from hoststream.sinks.vm_import import EventColumns, EventShape, EventValues, split_records
from hoststream.sinks.vm_series import (
    AGGREGATE_STATS,
    aggregate_lines,
    aggregate_series_name,
    event_lines,
    merged_labels,
    series_labels,
    target_labels,
)

__all__ = [
    "SAMPLE_SIZE",
    "AggregateHeads",
    "SeriesTemplate",
    "aggregate_heads",
    "event_template",
    "labels_field",
    "length_delimited",
    "varint",
    "write_request",
]

#: Bytes of one sample field with a timestamp in :data:`_SIX_BYTE_INSTANTS`.
SAMPLE_SIZE = 18
#: The sample field's tag (TimeSeries.samples = 2), its length, the value's tag.
_SAMPLE_START = b"\x12\x10\x09"
_TIMESTAMP_TAG = 0x10
#: A sample field with its value and instant zero, and where those start in it.
_EMPTY_SAMPLE = _SAMPLE_START + bytes(8) + bytes((_TIMESTAMP_TAG,)) + bytes(6)
_VALUE_AT = len(_SAMPLE_START)
_INSTANT_AT = _VALUE_AT + 9
#: Instants (ms) whose varint is 6 bytes: 2**35 (1971) to 2**42 (2109).
_SIX_BYTE_INSTANTS = (1 << 35, 1 << 42)
#: The statistics in :data:`AGGREGATE_STATS`' order; the rate, last, only for counters.
_STATS = tuple(AGGREGATE_STATS)
_ALWAYS = len(_STATS) - 1


def varint(n: int) -> bytes:
    """``n`` (not negative) as a protobuf varint."""
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_delimited(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte, the payload's length, the payload."""
    return bytes((tag,)) + varint(len(payload)) + payload


@lru_cache(maxsize=65_536)
def _label(name: str, value: str) -> bytes:
    """One ``labels`` field (a fleet's series share most of their labels)."""
    return length_delimited(
        0x0A, length_delimited(0x0A, name.encode()) + length_delimited(0x12, value.encode())
    )


def labels_field(name: str, labels: Mapping[str, str]) -> bytes:
    """A series' ``labels`` fields: ``__name__`` first, then ``labels`` sorted by name.

    Sorted, as Prometheus sends them: VictoriaMetrics spent about a quarter
    less CPU per value on requests with sorted labels (docs/sinks.md).
    """
    return _label("__name__", name) + _sorted_labels(labels)


def _sorted_labels(labels: Mapping[str, str]) -> bytes:
    return b"".join([_label(k, v) for k, v in sorted(labels.items())])


def _sample(value: float, timestamp_ms: int) -> bytes:
    """One sample field, any instant (negative ones as protobuf's int64: ten bytes)."""
    return length_delimited(
        0x12, b"\x09" + struct.pack("<d", value) + b"\x10" + varint(timestamp_ms % (1 << 64))
    )


@dataclass(frozen=True, slots=True)
class SeriesTemplate:
    """A host's series of one event shape, each a ``TimeSeries`` with one sample to fill.

    Attributes:
        body: the series' ``TimeSeries`` fields, their values and instants zero.
        value_offsets: where each series' 8 value bytes start in ``body`` (native int32).
        time_offsets: where each series' 6 instant bytes start in ``body`` (native int32).
        label_spans: where each series' labels start and end in ``body`` (native int32 pairs).
    """

    body: bytes
    value_offsets: bytes
    time_offsets: bytes
    label_spans: bytes

    def labels(self) -> list[bytes]:
        """Each series' labels fields."""
        spans = np.frombuffer(self.label_spans, np.int32).tolist()
        body = self.body
        return [body[start:end] for start, end in zip(spans[0::2], spans[1::2], strict=True)]


def event_template(event: MetricEvent) -> SeriesTemplate:
    """The template of ``event``'s series (its values and instant left out)."""
    target = target_labels(event.host, event.region)
    host_labels = event.host_labels
    parts: list[bytes] = []
    values: list[int] = []
    times: list[int] = []
    spans: list[int] = []
    at = 0
    for sample in event.samples:
        labels = labels_field(sample.name, merged_labels(target, host_labels, sample.labels))
        head = _series_head(len(labels) + SAMPLE_SIZE)
        parts += (head, labels, _EMPTY_SAMPLE)
        at += len(head)
        spans += (at, at + len(labels))
        at += len(labels)
        values.append(at + _VALUE_AT)
        times.append(at + _INSTANT_AT)
        at += SAMPLE_SIZE
    return SeriesTemplate(
        b"".join(parts),
        np.array(values, np.int32).tobytes(),
        np.array(times, np.int32).tobytes(),
        np.array(spans, np.int32).tobytes(),
    )


@lru_cache(maxsize=4096)
def _series_head(size: int) -> bytes:
    """A ``TimeSeries`` field's tag and length."""
    return b"\x0a" + varint(size)


class AggregateHeads(NamedTuple):
    """A series' ``TimeSeries`` fields up to its one sample, per statistic, in two parts.

    ``prefixes[i] + labels`` is statistic ``i``'s: the prefixes (the field's
    tag and length, the ``__name__`` label) are shared by every series of
    the metric and window size whose labels have the same length; the
    labels are this series' own.
    """

    prefixes: tuple[bytes, ...]
    labels: bytes


@lru_cache(maxsize=65_536)
def _stat_prefixes(metric: str, window_size_ms: int, labels_size: int) -> tuple[bytes, ...]:
    prefixes = []
    for stat in _STATS:
        name = _label("__name__", aggregate_series_name(metric, stat, window_size_ms))
        prefixes.append(_series_head(len(name) + labels_size + SAMPLE_SIZE) + name)
    return tuple(prefixes)


def aggregate_heads(series: AggregateSeries) -> AggregateHeads:
    """``series``' :class:`AggregateHeads` (the ``AggregateReader``'s ``derive``)."""
    labels = series_labels(series.host, series.region, series.labels)
    encoded = _sorted_labels(labels)
    return AggregateHeads(
        _stat_prefixes(series.metric, series.window_size_ms, len(encoded)), encoded
    )


@lru_cache(maxsize=4096)
def _grouped_heads(template: SeriesTemplate, samples: int) -> tuple[bytes, ...]:
    """Each series' ``TimeSeries`` field up to its samples, for ``samples`` of them."""
    extra = samples * SAMPLE_SIZE
    return tuple(_series_head(len(labels) + extra) + labels for labels in template.labels())


def _in_six_bytes(timestamps: np.ndarray[Any, np.dtype[np.int64]]) -> bool:
    low, high = _SIX_BYTE_INSTANTS
    return bool(((timestamps >= low) & (timestamps < high)).all())


def _six_byte_varints(timestamps: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, Any]:
    """Each instant's 6 varint bytes, as the low 48 bits of a little-endian uint64."""
    ts = timestamps.astype(np.uint64)
    out = (ts >> np.uint64(35)) << np.uint64(40)
    for byte in range(5):
        out |= (((ts >> np.uint64(7 * byte)) & np.uint64(0x7F)) | np.uint64(0x80)) << np.uint64(
            8 * byte
        )
    return out


def _at_every_byte(buffer: bytearray, dtype: str) -> np.ndarray[Any, Any]:
    """A view of ``buffer`` with a ``dtype`` value starting at each of its bytes."""
    size = np.dtype(dtype).itemsize
    return np.ndarray((max(0, len(buffer) - size + 1),), dtype, buffer, 0, (1,))


def _paste_instants(
    body: bytearray, offsets: np.ndarray[Any, Any], varints: np.ndarray[Any, Any]
) -> None:
    """Write each 6-byte varint at its offset: 4 bytes, then 2."""
    _at_every_byte(body, "<u4")[offsets] = (varints & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    _at_every_byte(body, "<u2")[offsets + 4] = (varints >> np.uint64(32)).astype(np.uint16)


def _samples(
    values: np.ndarray[Any, np.dtype[np.float64]],
    instants: np.ndarray[Any, np.dtype[np.int64]],
    which: np.ndarray[Any, np.dtype[np.intp]],
) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
    """The sample fields of ``values``, ``values[i]`` at ``instants[which[i]]``, one row
    each; None if an instant's varint is not 6 bytes.

    A batch holds few instants: their varints are made once each, not per sample.
    """
    if not _in_six_bytes(instants):
        return None
    tails = _six_byte_varints(instants).astype("<u8").view(np.uint8).reshape(len(instants), 8)
    count = len(values)
    rows = np.empty((count, SAMPLE_SIZE), np.uint8)
    rows[:, :3] = np.frombuffer(_SAMPLE_START, np.uint8)
    rows[:, 3:11] = values.astype("<f8", copy=False).view(np.uint8).reshape(count, 8)
    rows[:, 11] = _TIMESTAMP_TAG
    rows[:, 12:] = tails[which, :6]
    return rows


def _series_of_events(
    firsts: Sequence[int], counts: np.ndarray[Any, np.dtype[np.int64]]
) -> np.ndarray[Any, np.dtype[np.intp]]:
    """Where each value of each event is: event ``e``'s ``counts[e]`` values from ``firsts[e]``."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.repeat(np.array(firsts, np.intp) - starts, counts) + np.arange(total)


def _single_events(
    templates: Sequence[SeriesTemplate],
    instants: Sequence[int],
    firsts: Sequence[int],
    counts: Sequence[int],
    values: np.ndarray[Any, np.dtype[np.float64]],
) -> bytes | None:
    """Events alone of their shape in the batch, from their templates; None if an
    instant's varint is not 6 bytes."""
    times = np.array(instants, np.int64)
    if not _in_six_bytes(times):
        return None
    body = bytearray().join(t.body for t in templates)
    sizes = np.fromiter((len(t.body) for t in templates), np.int64, len(templates))
    series = np.array(counts, np.int64)
    starts = np.repeat(np.cumsum(sizes) - sizes, series)
    value_at = np.frombuffer(b"".join(t.value_offsets for t in templates), np.int32) + starts
    time_at = np.frombuffer(b"".join(t.time_offsets for t in templates), np.int32) + starts
    _at_every_byte(body, "<f8")[value_at] = values[_series_of_events(firsts, series)]
    _paste_instants(body, time_at, np.repeat(_six_byte_varints(times), series))
    return bytes(body)


def _grouped_events(
    groups: Sequence[tuple[EventShape, SeriesTemplate]], columns: EventColumns
) -> bytes | None:
    """Shapes with several events in the batch: one ``TimeSeries`` per series holding
    all its samples; None if an instant's varint is not 6 bytes."""
    shapes = [shape for shape, _ in groups]
    values, event_at = columns.by_series(shapes)
    instants = np.fromiter(
        chain.from_iterable(columns.by_shape[shape][0] for shape in shapes), np.int64, -1
    )
    samples = _samples(values, instants, event_at)
    if samples is None:
        return None
    heads: list[bytes] = []
    widths: list[int] = []
    for shape, template in groups:
        events = len(columns.by_shape[shape][0])
        heads += _grouped_heads(template, events)
        widths += [events * SAMPLE_SIZE] * len(shape.counters)
    blob = samples.tobytes()
    ends = np.cumsum(widths).tolist()
    chunks = [blob[end - width : end] for end, width in zip(ends, widths, strict=True)]
    return b"".join(chain.from_iterable(zip(heads, chunks, strict=True)))


def _aggregates(records: Sequence[AggregateValues]) -> bytes | None:
    """Aggregates read by shape (heads by :func:`aggregate_heads`); None if an
    instant's varint is not 6 bytes."""
    values: list[float] = []
    instants: dict[int, int] = {}  # window end -> its index; a batch holds few
    which: list[int] = []
    prefixes: list[bytes] = []
    labels: list[bytes] = []
    for record in records:
        # count (as a float, as the import lines write it), the statistics but
        # the quantile error (no series of its own), the rate of a counter.
        values.append(float(record.sample_count))
        values += record.stats[:-1]
        stats = _ALWAYS
        if record.rate_per_second is not None:
            values.append(record.rate_per_second)
            stats += 1
        which += [instants.setdefault(record.window_end, len(instants))] * stats
        heads: AggregateHeads = record.shape.derived
        prefixes += heads.prefixes[:stats]
        labels += [heads.labels] * stats
    samples = _samples(
        np.array(values, np.float64), np.array(list(instants), np.int64), np.array(which, np.intp)
    )
    if samples is None:
        return None
    # One bytes object per sample, made in C: a sample's last byte, its
    # instant's last varint byte, is never zero, so the fixed-width strings
    # lose no trailing NUL.
    chunks = samples.view(f"S{SAMPLE_SIZE}").ravel().tolist()
    return b"".join(chain.from_iterable(zip(prefixes, labels, chunks, strict=True)))


def _lines(lines: Iterable[dict[str, Any]]) -> bytes:
    """Import-line dicts (:func:`sinks.vm_series.event_lines`) as ``TimeSeries`` fields."""
    out = []
    for line in lines:
        metric = dict(line["metric"])
        name = metric.pop("__name__")
        series = labels_field(name, metric) + b"".join(
            _sample(v, t) for v, t in zip(line["values"], line["timestamps"], strict=True)
        )
        out.append(length_delimited(0x0A, series))
    return b"".join(out)


def write_request(
    records: Iterable[EventValues | AggregateValues | MetricEvent | WindowAggregate],
) -> bytes:
    """A ``WriteRequest`` (uncompressed) of ``records``.

    Events read by shape must carry a :class:`SeriesTemplate` as their shape's
    ``derived``, aggregates read by shape their :func:`aggregate_heads`.
    """
    columns, aggregates, objects = split_records(records)
    parts = [_events(columns)]
    if aggregates:
        written = _aggregates(aggregates)
        if written is None:  # a window's end outside the 6-byte range
            written = _lines(
                chain.from_iterable(aggregate_lines(a.aggregate()) for a in aggregates)
            )
        parts.append(written)
    for record in objects:
        more = event_lines(record) if isinstance(record, MetricEvent) else aggregate_lines(record)
        parts.append(_lines(more))
    return b"".join(parts)


def _events(columns: EventColumns) -> bytes:
    """Events read by shape: alone of their shape from templates, else grouped by series."""
    singles: list[SeriesTemplate] = []
    single_instants: list[int] = []
    single_firsts: list[int] = []
    single_counts: list[int] = []
    groups: list[tuple[EventShape, SeriesTemplate]] = []
    for shape, (instants, firsts) in columns.by_shape.items():
        template: SeriesTemplate = shape.derived
        if not template.body:
            continue  # events without samples
        if len(firsts) == 1:
            singles.append(template)
            single_instants.append(instants[0])
            single_firsts.append(firsts[0])
            single_counts.append(len(shape.counters))
        else:
            groups.append((shape, template))
    values = columns.values
    single = (
        _single_events(singles, single_instants, single_firsts, single_counts, values)
        if singles
        else b""
    )
    grouped = _grouped_events(groups, columns) if groups else b""
    if single is not None and grouped is not None:
        return single + grouped
    # An instant outside the 6-byte range (a test's epoch, a clock gone
    # wild): these events are written line by line from their values.
    return _lines(line for event in columns.events() for line in event_lines(event.event()))

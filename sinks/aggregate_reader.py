"""Window aggregates straight from their Avro bytes, without an object per record.

An aggregate's body is its series (host, metric, labels, kind, window size),
then what changes from window to window (the window's bounds, the count, ten
doubles, the optional rate), then the optional region. A series arrives once
per window, in the same bytes but for that middle part.

So the reader keeps, per series, an :class:`AggregateShape`: the series' fields
and what the sink derives from them once (the VictoriaMetrics import-line
prefixes, the SQL sink's fixed columns). An aggregate of a known series is read
with one regex match and one ``struct`` call into an :class:`AggregateValues`,
a tuple; a new series is read from the same bytes, without fastavro. A
consumer's batch is read at once (:meth:`AggregateReader.read_many`): every
value's fields are found by NumPy over all the batch's bytes together
(:mod:`sinks.aggregate_columns`), which leaves a dictionary lookup and a
tuple per aggregate to Python.

That reading assumes the layout of the current schema. The first value of
each writer schema (schema id or fingerprint) is therefore also decoded in
full by the topic's deserializer and the two readings compared: a schema
whose values read otherwise is always decoded in full, as is every value the
layout does not fit (longer strings are read too; a body that does not end
where the layout says does not fit).
"""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from confluent_kafka.serialization import SerializationContext

from hoststream.errors import SerializationError
from hoststream.schemas import AvroReader, MetricKind, RecordDeserializer, WindowAggregate
from hoststream.sinks.aggregate_columns import read_columns

__all__ = [
    "STATS_FIELDS",
    "AggregateReader",
    "AggregateSeries",
    "AggregateShape",
    "AggregateValues",
]

X = TypeVar("X")

#: Length of the value prefix before the Avro body, by its first byte.
_CONFLUENT_HEADER = 5  # 0x00, 4-byte schema id
_SINGLE_OBJECT_HEADER = 10  # C3 01, 8-byte fingerprint
_LONG_PREFIX = 0xC3
_VARINT = rb"[\x80-\xff]*[\x00-\x7f]"
#: After the labels: kind and window size (the series'), then the window's
#: start and end and the count (captured).
_FIVE_LONGS = re.compile(_VARINT * 2 + b"(" + _VARINT + b")(" + _VARINT + b")(" + _VARINT + b")")
#: sum, min, max, mean, last, p50, p90, p95, p99, quantile_relative_error, and
#: the rate's union branch (0: null, 2: double).
_DOUBLES = struct.Struct("<10dB")
_RATE = struct.Struct("<d")
_NULL, _DOUBLE = 0, 2
#: The kind's enum symbols, in the schema's order.
_KINDS = (MetricKind.GAUGE, MetricKind.COUNTER)
#: The statistics stored as :attr:`AggregateValues.stats`, in the Avro order.
STATS_FIELDS = (
    "sum",
    "min",
    "max",
    "mean",
    "last",
    "p50",
    "p90",
    "p95",
    "p99",
    "quantile_relative_error",
)
#: Writer schemas whose verdict is remembered; more are decoded in full.
_MAX_SCHEMAS = 1000
#: Strings and label sets shared by the series (hosts, metrics, label sets
#: repeat across series): remembered up to this many, then started afresh.
_MAX_SHARED = 100_000


class AggregateSeries(NamedTuple):
    """What every aggregate of one series carries alike."""

    host: str
    metric: str
    labels: Mapping[str, str]
    kind: MetricKind
    window_size_ms: int
    region: str | None


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class AggregateShape(Generic[X]):
    """One series' aggregates: what they share, and what a sink derived from that once.

    Attributes:
        series: host, metric, labels, kind, window size and region.
        derived: what the reading sink computed from ``series`` (e.g. the
            VictoriaMetrics import-line prefixes of each statistic).
    """

    series: AggregateSeries
    derived: X


class AggregateValues(NamedTuple):
    """One window aggregate as read by its series' shape: the shape and what varies.

    A named tuple: one is made per message, and a tuple is made in a fraction
    of the time of a frozen dataclass.
    """

    shape: AggregateShape[Any]
    window_start: int
    window_end: int
    #: The aggregate's ``count`` (a tuple's ``count`` is a method).
    sample_count: int
    #: sum, min, max, mean, last, p50, p90, p95, p99 and quantile_relative_error.
    stats: tuple[float, ...]
    rate_per_second: float | None

    @property
    def host(self) -> str:
        return self.shape.series.host

    @property
    def metric(self) -> str:
        return self.shape.series.metric

    @property
    def labels(self) -> Mapping[str, str]:
        return self.shape.series.labels

    @property
    def window_size_ms(self) -> int:
        return self.shape.series.window_size_ms

    @property
    def kind(self) -> MetricKind:
        return self.shape.series.kind

    @property
    def min(self) -> float:
        return self.stats[1]

    @property
    def quantile_relative_error(self) -> float:
        return self.stats[-1]

    def aggregate(self) -> WindowAggregate:
        """The whole record."""
        series, stats = self.shape.series, self.stats
        return WindowAggregate(
            host=series.host,
            metric=series.metric,
            labels=series.labels,
            kind=series.kind,
            window_size_ms=series.window_size_ms,
            window_start=self.window_start,
            window_end=self.window_end,
            count=self.sample_count,
            sum=stats[0],
            min=stats[1],
            max=stats[2],
            mean=stats[3],
            last=stats[4],
            p50=stats[5],
            p90=stats[6],
            p95=stats[7],
            p99=stats[8],
            quantile_relative_error=stats[9],
            rate_per_second=self.rate_per_second,
            region=series.region,
        )


class _Layout(NamedTuple):
    """Where the parts of one aggregate's body are."""

    header: bytes  # the schema id or fingerprint, with its marker
    series_end: int  # the series' bytes end here (after the window size)
    longs: re.Match[bytes]  # window start, end and count
    stats: tuple[float, ...]
    rate: float | None
    tail: int  # the optional region starts here and ends the body


def _layout(data: bytes) -> _Layout | None:
    """The parts of ``data``, if it is laid out as an aggregate of the current schema.

    Raises:
        IndexError: the bytes end too early.
        struct.error: the bytes end too early.
    """
    pos = header = _SINGLE_OBJECT_HEADER if data[0] == _LONG_PREFIX else _CONFLUENT_HEADER
    # Host and metric: strings shorter than 64 bytes have a one-byte length
    # (zig-zag, so even); then the labels, a map of such strings: one block
    # whose count (zig-zag: twice the labels, a key and a value each) is the
    # number of strings, then a zero.
    host_size = data[pos]
    metric_size = data[pos + 1 + (host_size >> 1)]
    pos += 2 + (host_size >> 1) + (metric_size >> 1)
    strings = data[pos]
    odd = host_size | metric_size | strings
    pos += 1
    if not odd & 0x81:
        for _ in range(strings):
            size = data[pos]
            odd |= size
            pos += 1 + (size >> 1)
        if strings:
            odd |= data[pos]  # a second block of labels
            pos += 1
    if odd & 0x81:  # a longer string, or another block layout: read it in full
        reader = AvroReader(data, header)
        reader.string()  # host
        reader.string()  # metric
        reader.skip_map()  # labels
        pos = reader.pos
    longs = _FIVE_LONGS.match(data, pos)
    if longs is None:
        return None
    pos = longs.end()
    *stats, rate_branch = _DOUBLES.unpack_from(data, pos)
    pos += _DOUBLES.size
    rate: float | None = None
    if rate_branch == _DOUBLE:
        rate = _RATE.unpack_from(data, pos)[0]
        pos += _RATE.size
    elif rate_branch != _NULL:
        return None
    return _Layout(data[:header], longs.start(1), longs, tuple(stats), rate, pos)


def _long(encoded: bytes) -> int:
    return AvroReader(encoded, 0).long()


class AggregateReader(Generic[X]):
    """Decodes window aggregates into :class:`AggregateValues`, learning each series' shape.

    Args:
        deserializer: decodes a value in full (the topic's Avro deserializer);
            used for the first value of each writer schema (to check the
            layout against) and for every value the layout does not fit.
        derive: what the sink keeps per series, computed once for its first aggregate.
        max_shapes: series remembered; beyond that the oldest are forgotten.
            A series costs a few hundred bytes; keep every series of the
            fleet (hosts x series x window sizes), or most are read anew.
    """

    def __init__(
        self,
        deserializer: RecordDeserializer[WindowAggregate],
        derive: Callable[[AggregateSeries], X],
        *,
        max_shapes: int = 2_000_000,
    ) -> None:
        self._deserialize = deserializer
        self._derive = derive
        self._max_shapes = max_shapes
        self._shapes: dict[bytes, AggregateShape[X]] = {}
        # header -> whether its schema's values read right by the layout.
        self._schemas: dict[bytes, bool] = {}
        self._shared: dict[Any, Any] = {}
        # One window's aggregates share its bounds: decoded once per window.
        self._last_start: tuple[bytes, int] = (b"", 0)
        self._last_end: tuple[bytes, int] = (b"", 0)

    def __call__(
        self, data: bytes | None, ctx: SerializationContext | None = None, /
    ) -> AggregateValues | WindowAggregate:
        """The aggregate's values by its series' shape, else the fully decoded aggregate.

        Raises:
            SerializationError: the bytes are no window aggregate of a known schema.
            SchemaRegistryUnavailableError: the registry did not answer; retry.
        """
        if not data:
            return self._deserialize(data, ctx)  # it raises the precise error
        try:
            layout = _layout(data)
            if layout is not None:
                trusted = self._schemas.get(layout.header)
                if trusted is None:
                    return self._check_schema(data, ctx, layout)
                if trusted:
                    values = self._values(data, layout)
                    if values is not None:
                        return values
        except (IndexError, struct.error, UnicodeDecodeError):
            pass
        return self._deserialize(data, ctx)

    def read_many(
        self,
        values: Sequence[bytes | None],
        context: Callable[[int], SerializationContext | None],
    ) -> list[AggregateValues | WindowAggregate | Exception]:
        """:meth:`__call__` for each of ``values``, the aggregates of known series read at once.

        Values of a writer schema whose layout was checked are read together
        (:func:`~sinks.aggregate_columns.read_columns`); those of a series
        read before become :class:`AggregateValues` with no more parsing, and
        a new series' fields are read where the columns found them. The rest
        (a new schema, bytes the layout does not fit) are read one by one by
        :meth:`__call__`, in the batch's order.

        Args:
            values: message values.
            context: the serialization context of ``values[i]``, made only
                for a value read one by one.

        Returns:
            Per value, what :meth:`__call__` returns, or the
            :class:`~hoststream.errors.SerializationError` it raised.

        Raises:
            SchemaRegistryUnavailableError: decoding should be retried.
        """
        out: list[Any] = [None] * len(values)
        at: list[int] = []
        bodies: list[bytes] = []
        trusted = self._schemas
        for i, data in enumerate(values):
            if data and len(data) > _SINGLE_OBJECT_HEADER:
                header = data[:_SINGLE_OBJECT_HEADER] if data[0] == _LONG_PREFIX else data[:5]
                if trusted.get(header):
                    at.append(i)
                    bodies.append(data)
        if bodies:
            columns = read_columns(bodies)
            shapes = self._shapes
            for n, (i, data, ok, series_end, tail) in enumerate(
                zip(at, bodies, columns.fits, columns.series_end, columns.tail, strict=True)
            ):
                if not ok:
                    continue
                key = data[:series_end] + data[tail:]
                shape = shapes.get(key)
                if shape is None:
                    # A new series: its fields from its bytes, where the columns found them.
                    with contextlib.suppress(IndexError, struct.error, UnicodeDecodeError):
                        shape = self._learn(key, data, series_end, tail)
                    if shape is None:
                        continue  # read one by one below, to the precise error
                out[i] = AggregateValues(
                    shape,
                    columns.window_start[n],
                    columns.window_end[n],
                    columns.count[n],
                    tuple(columns.stats[n]),
                    columns.rate[n],
                )
        for i, read in enumerate(out):
            if read is not None:
                continue
            try:
                out[i] = self(values[i], context(i))
            except SerializationError as exc:
                out[i] = exc
        return out

    def _values(self, data: bytes, layout: _Layout) -> AggregateValues | None:
        key = data[: layout.series_end] + data[layout.tail :]
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._learn(key, data, layout.series_end, layout.tail)
            if shape is None:
                return None
        start_bytes, end_bytes, count_bytes = layout.longs.group(1, 2, 3)
        if start_bytes == self._last_start[0]:
            window_start = self._last_start[1]
        else:
            window_start = _long(start_bytes)
            self._last_start = (start_bytes, window_start)
        if end_bytes == self._last_end[0]:
            window_end = self._last_end[1]
        else:
            window_end = _long(end_bytes)
            self._last_end = (end_bytes, window_end)
        if len(count_bytes) == 1:
            n = count_bytes[0]
            count = (n >> 1) ^ -(n & 1)
        else:
            count = _long(count_bytes)
        return AggregateValues(shape, window_start, window_end, count, layout.stats, layout.rate)

    def _learn(
        self, key: bytes, data: bytes, series_end: int, tail: int
    ) -> AggregateShape[X] | None:
        """Read a new series' shape from one of its aggregates and remember it under ``key``."""
        series = self._series(data, series_end, tail)
        if series is None:
            return None
        shape = AggregateShape(series, self._derive(series))
        if len(self._shapes) >= self._max_shapes:
            self._shapes.pop(next(iter(self._shapes)))
        self._shapes[key] = shape
        return shape

    def _series(self, data: bytes, series_end: int, tail_start: int) -> AggregateSeries | None:
        """The series' fields, read from its bytes; None if they do not end where expected."""
        header = _SINGLE_OBJECT_HEADER if data[0] == _LONG_PREFIX else _CONFLUENT_HEADER
        reader = AvroReader(data, header)
        host = self._share(reader.string().decode())
        metric = self._share(reader.string().decode())
        labels_start = reader.pos
        reader.skip_map()
        labels_bytes = data[labels_start : reader.pos]
        labels = self._shared.get(labels_bytes)
        if labels is None:
            reader.pos = labels_start
            labels = self._share_labels(labels_bytes, self._labels(reader))
        kind_index = reader.long()
        if not 0 <= kind_index < len(_KINDS):
            return None
        window_size_ms = self._share(reader.long())
        if reader.pos != series_end:
            return None
        tail = AvroReader(data, tail_start)
        branch = tail.long()
        region = self._share(tail.string().decode()) if branch == 1 else None
        if branch not in (0, 1) or tail.pos != len(data):
            return None
        return AggregateSeries(host, metric, labels, _KINDS[kind_index], window_size_ms, region)

    @staticmethod
    def _labels(reader: AvroReader) -> dict[str, str]:
        labels: dict[str, str] = {}
        while True:
            count = reader.long()
            if count == 0:
                return labels
            if count < 0:
                count = -count
                reader.long()  # the block's size in bytes
            for _ in range(count):
                name = reader.string().decode()
                labels[name] = reader.string().decode()

    def _share(self, value: Any) -> Any:
        shared = self._shared.get(value)
        if shared is None:
            if len(self._shared) >= _MAX_SHARED:
                self._shared.clear()
            shared = self._shared[value] = value
        return shared

    def _share_labels(self, encoded: bytes, labels: dict[str, str]) -> Mapping[str, str]:
        if len(self._shared) >= _MAX_SHARED:
            self._shared.clear()
        self._shared[encoded] = labels
        return labels

    def _check_schema(
        self, data: bytes, ctx: SerializationContext | None, layout: _Layout
    ) -> AggregateValues | WindowAggregate:
        """Decode the first value of a writer schema in full, and judge its layout by it."""
        aggregate = self._deserialize(data, ctx)
        values = None
        with contextlib.suppress(IndexError, struct.error, UnicodeDecodeError):
            values = self._values(data, layout)
        # By repr: a NaN (which the validator refuses later) equals itself there.
        fits = values is not None and repr(values.aggregate()) == repr(aggregate)
        if len(self._schemas) < _MAX_SCHEMAS:
            self._schemas[layout.header] = fits
        return values if fits and values is not None else aggregate

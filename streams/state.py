"""The window state of one host's metric family, in memory and as changelog records.

One :class:`FamilyState` per (host, family) holds everything needed to go on
after a restart: the event-time watermark, how far windows are closed, the
host's series, the samples of its open windows, and the alert rules' memory.

Samples are kept in columns, one :class:`Chunk` per accepted event (its
timestamp, the series index of each sample and the values), in the order they
arrived. They stay until the largest window they belong to has closed, so
every window's statistics come from its samples: a sample delivered twice
replaces itself, and statistics are computed in timestamp order whatever the
arrival order, which makes the result independent of redelivery.

For the changelog the state is cut into records (:class:`StateRecords`), so
that a batch writes only what it changed: a small header (watermark, closed
position, alert memory, which sample segments are live), the series table
when it grew, and the segment of each pane that received samples. All are
compact binary (little-endian NumPy columns), and equal states give equal
bytes.

A series that holds more samples in a closed pane than a window may hold
exactly (see :mod:`streams.aggregator`) keeps that pane as a
:class:`PaneSketch` instead: its exact count, sum, extremes, first and last
samples and counter increase, and its values as quantile-sketch buckets. It
goes into the pane's segment, after the samples.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from hoststream.schemas.records import MetricKind

__all__ = [
    "Chunk",
    "FamilyState",
    "PaneSketch",
    "SeriesKey",
    "StateRecords",
    "series_key",
    "shared_series",
    "shared_series_key",
]

#: A series within one host: metric name and its labels, sorted.
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]

Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]

_VERSION = 2
#: A segment holding a pane sketch; one without is still written as version 2.
_SKETCH_VERSION = 3
_NONE = -(2**63)  # an absent watermark or horizon in the binary header
_HEADER = struct.Struct("<BqqqI")  # version, watermark, horizon, interval, segment count
_SEGMENT_HEADER = struct.Struct("<BI")  # version, chunk count
_KINDS = (MetricKind.GAUGE, MetricKind.COUNTER)


#: Distinct series keys shared by every state, so that the hosts of a fleet
#: hold one copy of each name and label set between them (a key's strings
#: and tuples cost several hundred bytes, more than its samples).
_SHARED_KEYS: dict[SeriesKey, SeriesKey] = {}
_MAX_SHARED_KEYS = 1_000_000


def shared_series_key(key: SeriesKey) -> SeriesKey:
    """The one object for ``key`` (equal keys give the same object, up to a bound)."""
    found = _SHARED_KEYS.get(key)
    if found is None:
        if len(_SHARED_KEYS) >= _MAX_SHARED_KEYS:
            _SHARED_KEYS.clear()  # more distinct series than expected: only sharing is lost
        found = _SHARED_KEYS[key] = key
    return found


_SHARED_SERIES: dict[tuple[SeriesKey, MetricKind], tuple[SeriesKey, MetricKind]] = {}


def shared_series(key: SeriesKey, kind: MetricKind) -> tuple[SeriesKey, MetricKind]:
    """The one object for a series and its kind (as :func:`shared_series_key`)."""
    pair = (key, kind)
    found = _SHARED_SERIES.get(pair)
    if found is None:
        if len(_SHARED_SERIES) >= _MAX_SHARED_KEYS:
            _SHARED_SERIES.clear()
        found = _SHARED_SERIES[pair] = (shared_series_key(key), kind)
    return found


def series_key(metric: str, labels: Mapping[str, str]) -> SeriesKey:
    return shared_series_key((metric, tuple(sorted(labels.items()))))


@dataclass(slots=True, frozen=True)
class Chunk:
    """The accepted samples of one event: its timestamp, series indexes and values."""

    ts: int
    series: Int32Array
    values: Float64Array


@dataclass(slots=True, frozen=True)
class PaneSketch:
    """The series of one closed pane that held too many samples to keep, summarised.

    Row ``i`` is series ``series[i]`` in the pane starting at ``start``:
    ``count`` samples from ``first_ts`` to ``last_ts``, and the columns of
    ``stats`` (indexes ``SUM_HI`` ... ``INCREASE``). The exact sum is
    ``SUM_HI + SUM_LO`` (the correctly rounded sum, and what its rounding left
    out), so a sum over several panes stays exact to about 2**-100 of it. Its
    values are counted in quantile-sketch buckets ``ordinals[offsets[i]:offsets[i + 1]]``
    (see :func:`streams.sketch.bucket_ordinals`), ``buckets`` values in each.
    """

    SUM_HI = 0
    SUM_LO = 1
    MIN = 2
    MAX = 3
    FIRST = 4
    LAST = 5
    INCREASE = 6

    start: int
    series: Int32Array
    count: Int64Array
    first_ts: Int64Array
    last_ts: Int64Array
    stats: Float64Array  # shape (len(series), 7)
    offsets: Int64Array  # len(series) + 1
    ordinals: Int32Array
    buckets: Int64Array

    def __len__(self) -> int:
        return len(self.series)

    @property
    def nbytes(self) -> int:
        arrays = (self.series, self.count, self.first_ts, self.last_ts, self.stats)
        columns = sum(a.nbytes for a in arrays)
        return columns + self.offsets.nbytes + self.ordinals.nbytes + self.buckets.nbytes

    def to_bytes(self) -> bytes:
        return b"".join(
            [
                struct.pack("<qII", self.start, len(self.series), len(self.ordinals)),
                self.series.astype("<i4").tobytes(),
                self.count.astype("<i8").tobytes(),
                self.first_ts.astype("<i8").tobytes(),
                self.last_ts.astype("<i8").tobytes(),
                self.stats.astype("<f8").tobytes(),
                self.offsets.astype("<i8").tobytes(),
                self.ordinals.astype("<i4").tobytes(),
                # A bucket of one pane holds far fewer than 2**32 values.
                self.buckets.astype("<u4").tobytes(),
            ]
        )

    @classmethod
    def from_bytes(cls, raw: bytes, at: int = 0) -> PaneSketch:
        start, n, total = struct.unpack_from("<qII", raw, at)
        at += 16

        def take(dtype: str, count: int) -> npt.NDArray[Any]:
            nonlocal at
            array = np.frombuffer(raw, dtype=dtype, count=count, offset=at)
            at += array.nbytes
            return array

        return cls(
            start=start,
            series=take("<i4", n).astype(np.int32),
            count=take("<i8", n).astype(np.int64),
            first_ts=take("<i8", n).astype(np.int64),
            last_ts=take("<i8", n).astype(np.int64),
            stats=take("<f8", 7 * n).astype(np.float64).reshape(n, 7),
            offsets=take("<i8", n + 1).astype(np.int64),
            ordinals=take("<i4", total).astype(np.int32),
            buckets=take("<u4", total).astype(np.int64),
        )


@dataclass(slots=True)
class FamilyState:
    """Open windows and progress of one (host, family).

    Attributes:
        watermark: the latest event time seen, ms; None before the first event.
        horizon: windows ending at or before it are closed (the watermark or
            the wall clock, minus the grace period); None before any close.
        interval_ms: the collection interval the host last announced.
        series: the host's series of this family, in the order first seen;
            a chunk refers to them by index.
        kinds: the kind each series last had.
        chunks: accepted samples of windows not yet closed, in arrival order.
        sketches: by pane start, the series a closed pane held too many
            samples of, summarised (their samples are no longer in ``chunks``).
        alerts: the rule engine's memory by alert dedup key (see
            :mod:`streams.rules.engine`), kept here so that it is written to
            the changelog together with the windows it was derived from.
    """

    host: str
    family: str
    watermark: int | None = None
    horizon: int | None = None
    interval_ms: int = 10_000
    series: list[SeriesKey] = field(default_factory=list)
    kinds: list[MetricKind] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    sketches: dict[int, PaneSketch] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Not persisted: panes whose records changed other than by accepting
    #: events (summarised into a sketch), for the next write to the changelog.
    changed_panes: set[int] = field(default_factory=set, repr=False, compare=False)
    # Not persisted: per decoder template the series indexes of its samples.
    _templates: dict[int, Int32Array] = field(default_factory=dict, repr=False, compare=False)
    _flags: dict[str, npt.NDArray[np.bool_]] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: Not persisted: the index of each series looked up on its own (``series_index``).
    _derived: dict[SeriesKey, int] = field(default_factory=dict, repr=False, compare=False)
    #: Not persisted: per series, the first series of the same CPU (streams.aggregator).
    cpu_firsts: npt.NDArray[np.int64] | None = field(default=None, repr=False, compare=False)

    @property
    def open_samples(self) -> int:
        """Samples held for windows not closed yet."""
        return sum(len(c.values) for c in self.chunks)

    def state_bytes(self) -> int:
        """Approximate bytes this state holds: sample columns and series table."""
        columns = sum(c.series.nbytes + c.values.nbytes + 64 for c in self.chunks)
        sketches = sum(s.nbytes + 64 for s in self.sketches.values())
        return columns + sketches + 120 * len(self.series)

    def series_indexes(
        self, keys: Iterable[tuple[SeriesKey, MetricKind]], template: int | None = None
    ) -> Int32Array:
        """The index of each series, adding the new ones; cached per decoder template."""
        if template is not None:
            cached = self._templates.get(template)
            if cached is not None:
                return cached
        out = []
        # Built for the call, not kept: with a template each layout of a host
        # gets here once, and a dict per state cost 35 bytes a series.
        index_of = {key: i for i, key in enumerate(self.series)}
        for key, kind in keys:
            index = index_of.get(key)
            if index is None:
                shared = shared_series_key(key)
                index = len(self.series)
                index_of[shared] = index
                self.series.append(shared)
                self.kinds.append(kind)
            elif self.kinds[index] is not kind:
                self.kinds[index] = kind
                self._flags.clear()
            out.append(index)
        array = np.asarray(out, dtype=np.int32)
        if template is not None:
            self._templates[template] = array
        return array

    def series_index(self, key: SeriesKey, kind: MetricKind) -> int:
        """The index of one series, adding it if new; remembered for this state.

        For the few series a state derives itself (a CPU's busy ratio, closed
        with every window): :meth:`series_indexes` would build an index of all
        the state's series for each lookup. Series are only ever appended, so
        a remembered index stays right.
        """
        index = self._derived.get(key)
        if index is None or self.kinds[index] is not kind:
            index = int(self.series_indexes([(key, kind)])[0])
            self._derived[key] = index
        return index

    def series_flags(
        self, name: str, judge: Callable[[SeriesKey, MetricKind], bool]
    ) -> npt.NDArray[np.bool_]:
        """``judge`` of each series, as a bool array; cached under ``name``.

        ``judge`` must depend on nothing but the series and its kind.
        """
        flags = self._flags.get(name)
        if flags is None or len(flags) != len(self.series):
            flags = np.fromiter(
                (judge(key, kind) for key, kind in zip(self.series, self.kinds, strict=True)),
                dtype=bool,
                count=len(self.series),
            )
            self._flags[name] = flags
        return flags

    def to_bytes(self) -> bytes:
        """The whole state as one record (tests, tools); the changelog uses StateRecords."""
        parts = [
            StateRecords.header_of(self, ()),
            StateRecords.series_of(self),
            StateRecords.segment_of(self.chunks),
            *(StateRecords.segment_of([], s) for _, s in sorted(self.sketches.items())),
        ]
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)

    @classmethod
    def from_bytes(cls, raw: bytes) -> FamilyState:
        parts = []
        at = 0
        while at < len(raw):
            (size,) = struct.unpack_from("<I", raw, at)
            parts.append(raw[at + 4 : at + 4 + size])
            at += 4 + size
        if len(parts) < 2:
            raise ValueError("truncated window state")
        return StateRecords.restore(parts[0], parts[1], parts[2:])


@dataclass(slots=True)
class StateRecords:
    """A state cut into changelog records: header, series table, one segment per pane."""

    header: bytes
    series: bytes
    segments: dict[int, bytes]

    @staticmethod
    def header_of(state: FamilyState, segment_starts: Iterable[int]) -> bytes:
        starts = sorted(set(segment_starts))
        alerts = (
            json.dumps(state.alerts, separators=(",", ":"), sort_keys=True).encode()
            if state.alerts
            else b"{}"
        )
        return b"".join(
            [
                _HEADER.pack(
                    _VERSION,
                    _NONE if state.watermark is None else state.watermark,
                    _NONE if state.horizon is None else state.horizon,
                    state.interval_ms,
                    len(starts),
                ),
                np.asarray(starts, dtype="<i8").tobytes(),
                alerts,
            ]
        )

    @staticmethod
    def series_of(state: FamilyState) -> bytes:
        table = [
            [metric, [list(kv) for kv in labels], _KINDS.index(kind)]
            for (metric, labels), kind in zip(state.series, state.kinds, strict=True)
        ]
        body = {"host": state.host, "family": state.family, "series": table}
        # Compressed: the table (and its in-memory store) holds this record
        # for every state, and names and labels repeat (2.5 KB to about 0.4).
        return zlib.compress(json.dumps(body, separators=(",", ":")).encode())

    @staticmethod
    def segment_of(chunks: Iterable[Chunk], sketch: PaneSketch | None = None) -> bytes:
        """The samples of one pane, and its sketch if it has one."""
        chunks = list(chunks)
        times = np.fromiter((c.ts for c in chunks), dtype="<i8", count=len(chunks))
        counts = np.fromiter((len(c.values) for c in chunks), dtype="<u4", count=len(chunks))
        series = [c.series for c in chunks]
        values = [c.values for c in chunks]
        return b"".join(
            [
                _SEGMENT_HEADER.pack(_VERSION if sketch is None else _SKETCH_VERSION, len(chunks)),
                times.tobytes(),
                counts.tobytes(),
                np.concatenate(series).astype("<i4").tobytes() if series else b"",
                np.concatenate(values).astype("<f8").tobytes() if values else b"",
                b"" if sketch is None else sketch.to_bytes(),
            ]
        )

    @staticmethod
    def sharing_values(chunks: Sequence[Chunk], segment: bytes) -> list[Chunk]:
        """``chunks`` again, their values read from ``segment`` (their own record) in place.

        The table holds each segment as long as its pane is open, so chunks
        that read their values from it hold the samples once, not twice.
        """
        n = len(chunks)
        at = _SEGMENT_HEADER.size + 12 * n
        total = sum(len(c.values) for c in chunks)
        values = np.frombuffer(segment, dtype="<f8", count=total, offset=at + 4 * total)
        out = []
        begin = 0
        for chunk in chunks:
            end = begin + len(chunk.values)
            out.append(Chunk(chunk.ts, chunk.series, values[begin:end]))
            begin = end
        return out

    @classmethod
    def of(cls, state: FamilyState, pane_ms: int) -> StateRecords:
        by_pane: dict[int, list[Chunk]] = {start: [] for start in state.sketches}
        for chunk in state.chunks:
            by_pane.setdefault(chunk.ts - chunk.ts % pane_ms, []).append(chunk)
        return cls(
            header=cls.header_of(state, by_pane),
            series=cls.series_of(state),
            segments={
                start: cls.segment_of(chunks, state.sketches.get(start))
                for start, chunks in by_pane.items()
            },
        )

    @staticmethod
    def segment_starts(header: bytes) -> list[int]:
        version, _, _, _, n = _HEADER.unpack_from(header)
        if version != _VERSION:
            raise ValueError(f"unknown window state version {version}")
        return [int(s) for s in np.frombuffer(header, dtype="<i8", count=n, offset=_HEADER.size)]

    @staticmethod
    def restore(header: bytes, series: bytes, segments: Iterable[bytes]) -> FamilyState:
        version, watermark, horizon, interval, n = _HEADER.unpack_from(header)
        if version != _VERSION:
            raise ValueError(f"unknown window state version {version}")
        # Written as plain JSON before it was compressed.
        body = json.loads(series if series[:1] == b"{" else zlib.decompress(series))
        state = FamilyState(
            host=body["host"],
            family=body["family"],
            watermark=None if watermark == _NONE else watermark,
            horizon=None if horizon == _NONE else horizon,
            interval_ms=interval,
            alerts=json.loads(header[_HEADER.size + 8 * n :]),
        )
        for metric, labels, kind in body["series"]:
            key = shared_series_key((metric, tuple((str(k), str(v)) for k, v in labels)))
            state.series.append(key)
            state.kinds.append(_KINDS[kind])
        for raw in segments:
            chunks, sketch = _segment_parts(raw)
            state.chunks += chunks
            if sketch is not None:
                state.sketches[sketch.start] = sketch
        # Arrival order across segments is lost; within one timestamp it is
        # kept, which is all that deciding between duplicates needs.
        state.chunks.sort(key=lambda c: c.ts)
        return state


def _segment_parts(raw: bytes) -> tuple[list[Chunk], PaneSketch | None]:
    """A segment's chunks, and its sketch if it holds one."""
    version, n = _SEGMENT_HEADER.unpack_from(raw)
    if version not in (_VERSION, _SKETCH_VERSION):
        raise ValueError(f"unknown window state segment version {version}")
    at = _SEGMENT_HEADER.size
    times = np.frombuffer(raw, dtype="<i8", count=n, offset=at)
    at += 8 * n
    counts = np.frombuffer(raw, dtype="<u4", count=n, offset=at)
    at += 4 * n
    total = int(counts.sum())
    series = np.frombuffer(raw, dtype="<i4", count=total, offset=at).astype(np.int32)
    at += 4 * total
    values = np.frombuffer(raw, dtype="<f8", count=total, offset=at).astype(np.float64)
    at += 8 * total
    out = []
    begin = 0
    for ts, count in zip(times.tolist(), counts.tolist(), strict=True):
        out.append(Chunk(ts, series[begin : begin + count], values[begin : begin + count]))
        begin += count
    return out, None if version == _VERSION else PaneSketch.from_bytes(raw, at)

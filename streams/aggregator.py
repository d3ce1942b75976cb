"""The aggregation core: metric samples in, closed window aggregates out. No Kafka.

Start here. :class:`WindowAggregator` holds the configuration (window sizes,
grace period) and works on one :class:`~streams.state.FamilyState` per
(host, family), which the caller keeps. It is columnar: an event's samples
arrive as arrays (series index, value) with one timestamp
(:meth:`WindowAggregator.accept`), and :meth:`WindowAggregator.close` reduces
every window that a batch closed, over all states at once, with NumPy.
Everything is deterministic: the same events in the same order give the same
aggregates, whatever redeliveries happen in between.

How a window closes:

- Event time: each (host, family) has a watermark, the latest event timestamp
  seen. A window closes once the watermark reaches its end plus the grace
  period. A sample arriving for a closed window is late: it is counted
  (``hoststream_stream_late_samples_total``) and dropped.
- Wall clock: :meth:`WindowAggregator.close_on_wall_clock` closes what event
  time left open once wall time reaches a window's end plus grace; the caller
  decides when that is safe (see :mod:`streams.processor`).

Every window's statistics come from its own samples, kept until the largest
window holding them closes: count, sum (correctly rounded), min, max, mean,
last, quantiles, and the counter increase with resets. So a larger window is
exactly the union of its panes, whatever the order they closed in.

Quantiles are exact (``sorted(values)[floor(q * (n - 1))]``) for a window of
a series holding up to ``exact_samples`` samples. Beyond that they come from
a DDSketch (:mod:`streams.sketch`): each lies within ``relative_accuracy`` of
the exact one, and the aggregate says so in ``quantile_relative_error``. A
closed pane (the smallest window) that held more than ``exact_samples``
samples of a series, and that a larger window still needs, is kept as a
:class:`~streams.state.PaneSketch` rather than as samples: no window holding
it can be exact anyway. A larger window is then rolled up from its panes,
samples and sketches alike: counts, extremes, first and last samples and
counter steps exactly, sums to within about 2**-100 of the exact sum, and
the quantile buckets merged (exact for exact, by adding counts for sketches).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry

from hoststream.schemas.records import MetricEvent, MetricKind, WindowAggregate
from hoststream.streams.cpu import CPU_BUSY_RATIO, CPU_SECONDS
from hoststream.streams.exact import exact_sum
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.sketch import DEFAULT_RELATIVE_ACCURACY, bucket_ordinals, ordinal_values
from hoststream.streams.state import (
    Chunk,
    FamilyState,
    Float64Array,
    Int32Array,
    PaneSketch,
    SeriesKey,
    series_key,
)
from hoststream.streams.windows import DEFAULT_WINDOWS, WindowSize, parse_windows

__all__ = [
    "DEFAULT_EXACT_SAMPLES",
    "DEFAULT_GRACE_MS",
    "QUANTILES",
    "ClosedWindows",
    "Outcome",
    "WindowAggregator",
]

#: How long after a window's end its late samples are still merged.
DEFAULT_GRACE_MS = 10_000

#: Windows of a series holding up to this many samples have exact quantiles:
#: at a 10 s interval a 5m window holds 30, and a 1m window at 1 s holds 60.
DEFAULT_EXACT_SAMPLES = 64

#: The quantiles every aggregate reports, as (field, q).
QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))

Int64Array = npt.NDArray[np.int64]

# gkey = (state number * window sizes + size number) << _SERIES_BITS | series index
_SERIES_BITS = 31


@dataclass(slots=True)
class Outcome:
    """What adding one event did: the windows it closed and the samples it dropped."""

    aggregates: list[WindowAggregate] = field(default_factory=list)
    late_samples: int = 0
    invalid_samples: int = 0


#: The columns of :attr:`ClosedWindows.stats`, by their records' field names.
STATS_COLUMNS = ("sum", "min", "max", "mean", "last", "p50", "p90", "p95", "p99")


@dataclass(slots=True)
class ClosedWindows:
    """Windows closed by one call of :meth:`WindowAggregator.close`, as columns.

    Row ``i`` is the window ``[start[i], start[i] + size_ms[i])`` of series
    ``series[i]`` of ``states[state[i]]``. ``rate`` is NaN where a window has
    no counter rate. ``quantile_error`` is 0 where the quantiles are exact,
    the sketch's relative accuracy where they are not. The windows of sampled
    series come first, sorted by state, window size, series and start; the
    CPU busy ratios derived from them follow (their series are in the state's
    series table too). Every record made from them carries ``region``, the
    aggregator's.
    """

    states: list[FamilyState]
    state: Int64Array
    size_ms: Int64Array
    start: Int64Array
    series: Int64Array
    count: Int64Array
    stats: Float64Array  # columns: STATS_COLUMNS
    rate: Float64Array
    quantile_error: Float64Array
    region: str | None = None

    def __len__(self) -> int:
        return len(self.state)

    @classmethod
    def empty(cls) -> ClosedWindows:
        nothing = np.zeros(0, dtype=np.int64)
        no_floats = np.zeros(0)
        return cls(
            [], nothing, nothing, nothing, nothing, nothing, np.zeros((0, 9)), no_floats, no_floats
        )

    def windows(self) -> set[tuple[int, int, int]]:
        """(state number, size, start) of every window closed."""
        return set(
            zip(self.state.tolist(), self.size_ms.tolist(), self.start.tolist(), strict=True)
        )

    def aggregate(self, i: int) -> WindowAggregate:
        """Row ``i`` as a record."""
        state = self.states[int(self.state[i])]
        index = int(self.series[i])
        metric, labels = state.series[index]
        kind = state.kinds[index]
        size = int(self.size_ms[i])
        start = int(self.start[i])
        s = self.stats[i].tolist()
        rate = float(self.rate[i])
        return WindowAggregate(
            host=state.host,
            metric=metric,
            kind=kind,
            window_size_ms=size,
            window_start=start,
            window_end=start + size,
            count=int(self.count[i]),
            sum=s[0],
            min=s[1],
            max=s[2],
            mean=s[3],
            last=s[4],
            p50=s[5],
            p90=s[6],
            p95=s[7],
            p99=s[8],
            quantile_relative_error=float(self.quantile_error[i]),
            labels=dict(labels),
            rate_per_second=None if math.isnan(rate) else rate,
            region=self.region,
        )

    def row_flags(
        self, name: str, judge: Callable[[SeriesKey, MetricKind], bool]
    ) -> npt.NDArray[np.bool_]:
        """``judge`` of each row's series (see :meth:`FamilyState.series_flags`)."""
        return _row_flags(self.states, self.state, self.series, name, judge)

    def rows_of(self, wanted: frozenset[tuple[str, int]]) -> npt.NDArray[np.bool_]:
        """Rows whose metric is one of ``wanted``'s and whose size one of its sizes."""
        metrics = {metric for metric, _ in wanted}
        sizes = {size for _, size in wanted}
        return self.row_flags(
            f"metric in {sorted(metrics)}", lambda key, _: key[0] in metrics
        ) & np.isin(self.size_ms, sorted(sizes))

    def by_state(
        self,
        wanted: frozenset[tuple[str, int]] | None = None,
        states: Iterable[int] | None = None,
    ) -> dict[int, list[WindowAggregate]]:
        """Records per state number, in the order windows closed for each series.

        Args:
            wanted: only (metric, window size) pairs in this set; None: all.
            states: only the windows of these state numbers; None: all.
        """
        out: dict[int, list[WindowAggregate]] = {}
        rows: Iterable[int]
        if wanted is None and states is None:
            rows = range(len(self.state))
        else:
            candidates = np.ones(len(self.state), dtype=bool)
            if wanted is not None:
                candidates &= self.rows_of(wanted)
            if states is not None:
                candidates &= np.isin(self.state, sorted(states))
            rows = np.flatnonzero(candidates).tolist()
        for i in rows:
            if wanted is not None:
                state = self.states[int(self.state[i])]
                metric = state.series[int(self.series[i])][0]
                if (metric, int(self.size_ms[i])) not in wanted:
                    continue
            out.setdefault(int(self.state[i]), []).append(self.aggregate(i))
        for aggregates in out.values():
            aggregates.sort(key=lambda a: (a.window_size_ms, a.window_end))
        return out

    def aggregates(self) -> Iterator[WindowAggregate]:
        """Every row as a record."""
        for i in range(len(self.state)):
            yield self.aggregate(i)


def _is_counter(_key: SeriesKey, kind: MetricKind) -> bool:
    return kind is MetricKind.COUNTER


def _is_cpu_time(key: SeriesKey, kind: MetricKind) -> bool:
    return key[0] == CPU_SECONDS and kind is MetricKind.COUNTER


def _row_flags(
    states: Sequence[FamilyState],
    owner: Int64Array,
    series: Int64Array,
    name: str,
    judge: Callable[[SeriesKey, MetricKind], bool],
) -> npt.NDArray[np.bool_]:
    """Per row, ``judge`` of its series, from each state's cached flags."""
    flags = [state.series_flags(name, judge) for state in states]
    if not flags:
        return np.zeros(len(owner), dtype=bool)
    offsets = np.zeros(len(flags), dtype=np.int64)
    offsets[1:] = np.cumsum([len(f) for f in flags[:-1]])
    flat: npt.NDArray[np.bool_] = np.concatenate(flags)
    picked: npt.NDArray[np.bool_] = flat[offsets[owner] + series]
    return picked


class WindowAggregator:
    """Tumbling event-time windows per (host, metric, labels), with grace."""

    def __init__(
        self,
        windows: Sequence[str | WindowSize] = DEFAULT_WINDOWS,
        *,
        grace_ms: int = DEFAULT_GRACE_MS,
        derive_cpu_utilisation: bool = True,
        metrics: StreamMetrics | None = None,
        region: str | None = None,
        exact_samples: int = DEFAULT_EXACT_SAMPLES,
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
    ) -> None:
        """Configure the windows.

        Args:
            windows: window sizes such as ``"10s"``, ``"1m"``, ``"5m"``; each a
                multiple of the smallest.
            grace_ms: how long after a window's end (event time) its late
                samples are still merged; 0 or more.
            derive_cpu_utilisation: also emit ``hoststream_cpu_busy_ratio``
                from ``node_cpu_seconds_total`` (see :mod:`streams.cpu`).
            metrics: the counters to update; default: a registry of their own (not served).
            region: the region every aggregate carries (``HOSTSTREAM_REGION``): a
                region's processors aggregate its own hosts only.
            exact_samples: a window of a series holding up to this many samples
                has exact quantiles; one holding more, quantiles from a sketch.
            relative_accuracy: the sketch's bound: each of its quantiles lies
                within this fraction of the exact quantile's value; in (0, 1).
        """
        if grace_ms < 0:
            raise ValueError(f"grace must be 0 or more, got {grace_ms} ms")
        if exact_samples < 1:
            raise ValueError(f"exact_samples must be 1 or more, got {exact_samples}")
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative accuracy must lie in (0, 1), got {relative_accuracy}")
        self.exact_samples = exact_samples
        self.relative_accuracy = relative_accuracy
        self.windows = parse_windows(windows)
        self.pane = self.windows[0]
        self.largest = self.windows[-1]
        self.grace_ms = grace_ms
        self.derive_cpu_utilisation = derive_cpu_utilisation
        self.region = region
        self.metrics = metrics if metrics is not None else StreamMetrics(CollectorRegistry())
        self._sizes = np.asarray([w.ms for w in self.windows], dtype=np.int64)

    def new_state(self, host: str, family: str) -> FamilyState:
        return FamilyState(host=host, family=family)

    def closed_until(self, state: FamilyState) -> int | None:
        """Samples before this are late: their smallest window has closed."""
        return None if state.horizon is None else self.pane.start_of(state.horizon)

    def accept(
        self,
        state: FamilyState,
        timestamp_ms: int,
        interval_ms: int,
        series: Int32Array,
        values: Float64Array,
    ) -> tuple[int, int]:
        """Merge one event's samples into ``state``; return (late, invalid) sample counts.

        Nothing closes here: the caller calls :meth:`close` once per batch with
        the horizon the states had before it, and lateness of each event is
        judged against the horizon the events before it reached.
        """
        state.interval_ms = interval_ms
        late = invalid = 0
        closed_until = self.closed_until(state)
        if closed_until is not None and timestamp_ms < closed_until:
            late = len(values)
        else:
            finite = np.isfinite(values)
            if not finite.all():
                invalid = len(values) - int(finite.sum())
                series, values = series[finite], values[finite]
            if len(values):
                state.chunks.append(Chunk(timestamp_ms, series, values))
        if state.watermark is None or timestamp_ms > state.watermark:
            state.watermark = timestamp_ms
        self._advance(state, state.watermark)
        return late, invalid

    def _advance(self, state: FamilyState, limit_ms: int) -> None:
        horizon = limit_ms - self.grace_ms
        if state.horizon is None or horizon > state.horizon:
            state.horizon = horizon

    def add(self, state: FamilyState, event: MetricEvent) -> Outcome:
        """Merge one event and close what its time closes (one event at a time)."""
        if (event.host, event.family) != (state.host, state.family):
            raise ValueError(
                f"event of {event.host}/{event.family} given to the state of"
                f" {state.host}/{state.family}"
            )
        before = state.horizon
        series = state.series_indexes((series_key(s.name, s.labels), s.kind) for s in event.samples)
        values = np.fromiter(
            (float(s.value) for s in event.samples), dtype=np.float64, count=len(event.samples)
        )
        late, invalid = self.accept(state, event.timestamp_ms, event.interval_ms, series, values)
        self.count_event(event.family, 1, late, invalid)
        closed = self.close([(state, before)])
        return Outcome(list(closed.aggregates()), late, invalid)

    def count_event(self, family: str, events: int, late: int, invalid: int) -> None:
        self.metrics.events.labels(family).inc(events)
        if late:
            self.metrics.late_samples.labels(family).inc(late)
        if invalid:
            self.metrics.invalid_samples.labels(family).inc(invalid)

    def quiet_after_ms(self, state: FamilyState) -> int:
        """How long without events before the state's host counts as quiet.

        At least the grace period, and two collection intervals, so that a host
        that reports every 30 s is not taken for quiet between two reports.
        """
        return max(self.grace_ms, 2 * state.interval_ms)

    def next_close_ms(self, state: FamilyState) -> int | None:
        """The limit (watermark or wall time) at which the earliest open window closes."""
        ends = []
        for size in self.windows:
            frontier = None if state.horizon is None else size.start_of(state.horizon)
            open_ts = [c.ts for c in state.chunks if frontier is None or c.ts >= frontier]
            open_ts += [s for s in state.sketches if frontier is None or s >= frontier]
            if open_ts:
                ends.append(size.start_of(min(open_ts)) + size.ms)
        return min(ends) + self.grace_ms if ends else None

    def close_on_wall_clock(self, state: FamilyState, now_ms: int) -> list[WindowAggregate]:
        """Close the windows whose end plus grace has passed in wall-clock time."""
        return list(self.close_at([(state, now_ms)]).aggregates())

    def close_at(self, limits: Iterable[tuple[FamilyState, int]]) -> ClosedWindows:
        """Close, for each state, what the limit (wall time) closes; counts wall-clock closes."""
        changes = []
        for state, limit in limits:
            changes.append((state, state.horizon))
            self._advance(state, limit)
        closed = self.close(changes)
        if len(closed):
            self.metrics.wall_clock_closes.inc(len(closed.windows()))
        return closed

    def close(self, changes: Sequence[tuple[FamilyState, int | None]]) -> ClosedWindows:
        """Reduce every window closed since each state's earlier horizon.

        Args:
            changes: (state, its horizon before the events or clock that moved it).
        """
        states: list[FamilyState] = []
        times: list[int] = []
        lengths: list[int] = []
        groups: list[int] = []
        series: list[Int32Array] = []
        values: list[Float64Array] = []
        sketch_groups: list[int] = []
        sketches: list[PaneSketch] = []
        keep_from_of: list[int] = []
        n_sizes = len(self.windows)
        for state, before in changes:
            after = state.horizon
            if after is None or (before is not None and after <= before):
                continue
            number = len(states)
            took = False
            for j, size in enumerate(self.windows):
                high = size.start_of(after)
                low = None if before is None else size.start_of(before)
                if low is not None and high <= low:
                    continue
                group = number * n_sizes + j
                for chunk in state.chunks:
                    if chunk.ts < high and (low is None or chunk.ts >= low):
                        times.append(chunk.ts)
                        lengths.append(len(chunk.values))
                        groups.append(group)
                        series.append(chunk.series)
                        values.append(chunk.values)
                        took = True
                for start, sketch in state.sketches.items():
                    if start < high and (low is None or start >= low):
                        sketch_groups.append(group)
                        sketches.append(sketch)
                        took = True
            keep_from = self.largest.start_of(after)
            state.chunks = [c for c in state.chunks if c.ts >= keep_from]
            if state.sketches:
                state.sketches = {s: k for s, k in state.sketches.items() if s >= keep_from}
            if took:
                states.append(state)
                keep_from_of.append(keep_from)
        if not states:
            return ClosedWindows.empty()
        closed, summaries = self._reduce(
            states,
            np.repeat(np.asarray(times, dtype=np.int64), lengths),
            np.repeat(np.asarray(groups, dtype=np.int64), lengths),
            np.concatenate(series).astype(np.int64) if series else np.zeros(0, dtype=np.int64),
            np.concatenate(values) if values else np.zeros(0),
            sketched=_Sketched.of(sketch_groups, sketches),
            keep_from=np.asarray(keep_from_of, dtype=np.int64),
        )
        for number, sketch in summaries:
            _hold_as_sketch(states[number], sketch, self.pane.ms)
        return closed

    def _reduce(
        self,
        states: list[FamilyState],
        ts: Int64Array,
        group: Int64Array,
        series: Int64Array,
        values: Float64Array,
        *,
        sketched: _Sketched | None,
        keep_from: Int64Array,
    ) -> tuple[ClosedWindows, list[tuple[int, PaneSketch]]]:
        """The closed windows of the rows, and the panes to hold as sketches from now on."""
        n_sizes = len(self.windows)
        n_raw = len(values)
        # Columns beyond the samples' own, only where sketched panes take part:
        # each sketched (series, pane) enters as two rows, its first and its
        # last sample, carrying the pane's count, sum, extremes and increase.
        extra: tuple[Int64Array, Float64Array, Float64Array, Float64Array, Float64Array] | None
        extra = kind = None
        if sketched is not None:
            m = len(sketched.group)
            stats = sketched.stats
            ts = np.concatenate([ts, sketched.first_ts, sketched.last_ts])
            group = np.concatenate([group, sketched.group, sketched.group])
            series = np.concatenate([series, sketched.series, sketched.series])
            raw_values = values
            values = np.concatenate([values, stats[:, PaneSketch.FIRST], stats[:, PaneSketch.LAST]])
            extra = (
                # weight: the first row counts one sample, the last the rest
                np.concatenate([np.ones(n_raw + m, dtype=np.int64), sketched.count - 1]),
                # parts of the sum, minimum and maximum
                np.concatenate(
                    [raw_values, stats[:, PaneSketch.SUM_HI], stats[:, PaneSketch.SUM_LO]]
                ),
                np.concatenate([raw_values, np.tile(stats[:, PaneSketch.MIN], 2)]),
                np.concatenate([raw_values, np.tile(stats[:, PaneSketch.MAX], 2)]),
                # the step into the last row: the pane's own increase
                np.concatenate([np.full(n_raw + m, np.nan), stats[:, PaneSketch.INCREASE]]),
            )
            # -1: a sample; k >= 0: the first row of sketched row k; -2: a last row.
            kind = np.concatenate(
                [np.full(n_raw, -1), np.arange(m, dtype=np.int64), np.full(m, -2)]
            )
        gkey = (group << _SERIES_BITS) | series
        # Stable: rows with the same series and timestamp keep their arrival
        # order, and the last delivered one wins below.
        order = np.lexsort((ts, gkey))
        gkey, ts, v = gkey[order], ts[order], values[order]
        keep = np.ones(len(gkey), dtype=bool)
        keep[:-1] = (gkey[1:] != gkey[:-1]) | (ts[1:] != ts[:-1])
        gkey, ts, v = gkey[keep], ts[keep], v[keep]
        size_ms = self._sizes[(gkey >> _SERIES_BITS) % n_sizes]
        start = ts - ts % size_ms
        n = len(v)
        boundary = np.ones(n, dtype=bool)
        boundary[1:] = (gkey[1:] != gkey[:-1]) | (start[1:] != start[:-1])
        first = np.flatnonzero(boundary)
        last = np.append(first[1:], n) - 1
        # Counter increase: each step up, or the new value after a reset.
        step = np.zeros(n)
        step[1:] = np.where(v[1:] >= v[:-1], v[1:] - v[:-1], v[1:])
        window_of_row = np.cumsum(boundary) - 1
        summed = v
        stats = np.empty((len(first), 9))
        if extra is None or kind is None:
            count = last - first + 1
            low, high = v, v
        else:
            picked = order[keep]
            weights, parts, lows, highs, inners = extra
            weight, sum_part = weights[picked], parts[picked]
            low, high, inner = lows[picked], highs[picked], inners[picked]
            kind = kind[picked]
            summed = sum_part
            step = np.where(np.isnan(inner), step, inner)
            count = np.add.reduceat(weight, first)
        step[boundary] = 0.0
        increase = np.add.reduceat(step, first)
        dt = ts[last] - ts[first]
        sums = _exact_sums(summed, first, last + 1)
        stats[:, 0] = sums
        stats[:, 1] = np.minimum.reduceat(low, first)
        stats[:, 2] = np.maximum.reduceat(high, first)
        stats[:, 3] = sums / count
        stats[:, 4] = v[last]
        # Quantiles: the values of each window sorted, then the order statistic
        # sorted(values)[floor(q * (n - 1))] picked per window; windows holding
        # more than exact_samples take theirs from the sketch below instead.
        sorted_v = v[np.lexsort((v, window_of_row))]
        for column, (_, q) in enumerate(QUANTILES, start=5):
            at = np.minimum(first + np.floor(q * (count - 1)).astype(np.int64), last)
            stats[:, column] = sorted_v[at]
        big = count > self.exact_samples
        quantile_error = np.where(big, self.relative_accuracy, 0.0)
        if big.any():
            stats[big, 5:] = self._sketch_quantiles(
                np.flatnonzero(big),
                count=count,
                stats=stats,
                window_of_row=window_of_row,
                v=v,
                kind=kind,
                sketched=sketched,
            )
        keys = gkey[first]
        owner = (keys >> _SERIES_BITS) // n_sizes
        series_of = keys & ((1 << _SERIES_BITS) - 1)
        counter = _row_flags(states, owner, series_of, "counter", _is_counter)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(counter & (count >= 2) & (dt > 0), increase * 1000.0 / dt, np.nan)
        # Panes that held too many samples of a series to be exact in any
        # window, and that a larger window still needs: held as sketches.
        summarise = np.flatnonzero(
            big & (size_ms[first] == self.pane.ms) & (start[first] >= keep_from[owner])
        )
        summaries = (
            self._pane_sketches(
                summarise,
                owner=owner,
                start=start[first],
                series=series_of,
                count=count,
                stats=stats,
                increase=increase,
                ts=ts,
                v=v,
                first=first,
                last=last,
                window_of_row=window_of_row,
            )
            if len(summarise)
            else []
        )
        closed = ClosedWindows(
            states=states,
            state=owner,
            size_ms=size_ms[first],
            start=start[first],
            series=series_of,
            count=count,
            stats=stats,
            rate=rate,
            quantile_error=quantile_error,
            region=self.region,
        )
        if self.derive_cpu_utilisation:
            closed = _with_cpu_busy(closed)
        for size in self.windows:
            emitted = int((closed.size_ms == size.ms).sum())
            if emitted:
                self.metrics.windows_emitted.labels(size.label).inc(emitted)
        return closed, summaries

    def _sketch_quantiles(
        self,
        windows: Int64Array,
        *,
        count: Int64Array,
        stats: Float64Array,
        window_of_row: Int64Array,
        v: Float64Array,
        kind: Int64Array | None,
        sketched: _Sketched | None,
    ) -> Float64Array:
        """The quantiles of ``windows`` from their buckets: samples' and sketched panes' merged."""
        in_big = np.zeros(len(count), dtype=bool)
        in_big[windows] = True
        row_big = in_big[window_of_row]
        samples = row_big if kind is None else row_big & (kind == -1)
        entry_window = [window_of_row[samples]]
        entry_ordinal = [bucket_ordinals(v[samples], self.relative_accuracy)]
        entry_count = [np.ones(int(samples.sum()), dtype=np.int64)]
        if kind is not None and sketched is not None:
            firsts = np.flatnonzero(row_big & (kind >= 0))
            begin = sketched.offsets[kind[firsts]]
            lengths = sketched.offsets[kind[firsts] + 1] - begin
            taken = np.repeat(begin - (np.cumsum(lengths) - lengths), lengths) + np.arange(
                int(lengths.sum())
            )
            entry_window.append(np.repeat(window_of_row[firsts], lengths))
            entry_ordinal.append(sketched.ordinals[taken])
            entry_count.append(sketched.buckets[taken])
        window = np.concatenate(entry_window)
        ordinal = np.concatenate(entry_ordinal)
        order = np.lexsort((ordinal, window))
        window, ordinal = window[order], ordinal[order]
        running = np.cumsum(np.concatenate(entry_count)[order])
        begin = np.searchsorted(window, windows, side="left")
        before = np.where(begin > 0, running[np.maximum(begin - 1, 0)], 0)
        out = np.empty((len(windows), len(QUANTILES)))
        low, high = stats[windows, 1], stats[windows, 2]
        for column, (_, q) in enumerate(QUANTILES):
            # The bucket holding the value of rank floor(q * (n - 1)).
            rank = np.floor(q * (count[windows] - 1)).astype(np.int64)
            at = np.searchsorted(running, before + rank, side="right")
            estimate = ordinal_values(ordinal[at], self.relative_accuracy)
            # The true quantile lies in [min, max]: clamping only brings the
            # estimate closer to it.
            out[:, column] = np.clip(estimate, low, high)
        return out

    def _pane_sketches(
        self,
        windows: Int64Array,
        *,
        owner: Int64Array,
        start: Int64Array,
        series: Int64Array,
        count: Int64Array,
        stats: Float64Array,
        increase: Float64Array,
        ts: Int64Array,
        v: Float64Array,
        first: Int64Array,
        last: Int64Array,
        window_of_row: Int64Array,
    ) -> list[tuple[int, PaneSketch]]:
        """One sketch per (state, pane) of the pane ``windows`` (all of samples only)."""
        in_set = np.zeros(len(count), dtype=bool)
        in_set[windows] = True
        rows = in_set[window_of_row]
        row_window = window_of_row[rows]
        ordinal = bucket_ordinals(v[rows], self.relative_accuracy)
        order = np.lexsort((ordinal, row_window))
        row_window, ordinal = row_window[order], ordinal[order]
        change = np.ones(len(ordinal), dtype=bool)
        change[1:] = (row_window[1:] != row_window[:-1]) | (ordinal[1:] != ordinal[:-1])
        bucket_at = np.flatnonzero(change)
        bucket_window = row_window[bucket_at]
        bucket_n = np.diff(np.append(bucket_at, len(ordinal)))
        bucket_ordinal = ordinal[bucket_at]
        # Windows come in bucket order; each one's buckets are a run.
        bucket_begin = np.searchsorted(bucket_window, windows, side="left")
        bucket_end = np.searchsorted(bucket_window, windows, side="right")
        listed = v.tolist()
        by_pane: dict[tuple[int, int], list[int]] = {}
        for k, w in enumerate(windows.tolist()):
            by_pane.setdefault((int(owner[w]), int(start[w])), []).append(k)
        out = []
        for (number, pane_start), ks in sorted(by_pane.items()):
            picked = windows[ks]
            hi = stats[picked, 0]
            lo = [
                exact_sum([*listed[a : b + 1], -h])
                for a, b, h in zip(
                    first[picked].tolist(), last[picked].tolist(), hi.tolist(), strict=True
                )
            ]
            pane_stats = np.empty((len(picked), 7))
            pane_stats[:, PaneSketch.SUM_HI] = hi
            pane_stats[:, PaneSketch.SUM_LO] = lo
            pane_stats[:, PaneSketch.MIN] = stats[picked, 1]
            pane_stats[:, PaneSketch.MAX] = stats[picked, 2]
            pane_stats[:, PaneSketch.FIRST] = v[first[picked]]
            pane_stats[:, PaneSketch.LAST] = v[last[picked]]
            pane_stats[:, PaneSketch.INCREASE] = increase[picked]
            b_begin, b_end = bucket_begin[ks], bucket_end[ks]
            lengths = b_end - b_begin
            taken = np.concatenate(
                [np.arange(a, b) for a, b in zip(b_begin.tolist(), b_end.tolist(), strict=True)]
            )
            offsets = np.zeros(len(picked) + 1, dtype=np.int64)
            offsets[1:] = np.cumsum(lengths)
            sketch = PaneSketch(
                start=pane_start,
                series=series[picked].astype(np.int32),
                count=count[picked].astype(np.int64),
                first_ts=ts[first[picked]],
                last_ts=ts[last[picked]],
                stats=pane_stats,
                offsets=offsets,
                ordinals=bucket_ordinal[taken].astype(np.int32),
                buckets=bucket_n[taken].astype(np.int64),
            )
            out.append((number, sketch))
        return out


@dataclass(slots=True)
class _Sketched:
    """The sketched (series, pane) rows taking part in one reduction, as columns."""

    group: Int64Array
    series: Int64Array
    count: Int64Array
    first_ts: Int64Array
    last_ts: Int64Array
    stats: Float64Array
    offsets: Int64Array  # into ordinals and buckets, len(group) + 1
    ordinals: npt.NDArray[np.int32]
    buckets: Int64Array

    @classmethod
    def of(cls, groups: Sequence[int], sketches: Sequence[PaneSketch]) -> _Sketched | None:
        if not sketches:
            return None
        base = np.cumsum([0] + [len(s.ordinals) for s in sketches[:-1]])
        offsets = np.concatenate(
            [s.offsets[:-1] + b for s, b in zip(sketches, base.tolist(), strict=True)]
            + [np.asarray([int(base[-1]) + len(sketches[-1].ordinals)])]
        )
        return cls(
            group=np.repeat(np.asarray(groups, dtype=np.int64), [len(s) for s in sketches]),
            series=np.concatenate([s.series for s in sketches]).astype(np.int64),
            count=np.concatenate([s.count for s in sketches]),
            first_ts=np.concatenate([s.first_ts for s in sketches]),
            last_ts=np.concatenate([s.last_ts for s in sketches]),
            stats=np.concatenate([s.stats for s in sketches]),
            offsets=offsets.astype(np.int64),
            ordinals=np.concatenate([s.ordinals for s in sketches]),
            buckets=np.concatenate([s.buckets for s in sketches]),
        )


#: Values made Python floats at a time for the exact sums: a burst of closes
#: at 2,000 hosts listed over a million at once, tens of MB of float objects.
_FSUM_BLOCK = 1 << 16


def _exact_sums(values: Float64Array, starts: Int64Array, ends: Int64Array) -> Float64Array:
    """The correctly rounded sum (:func:`exact_sum`) of ``values[starts[i]:ends[i]]`` for each i.

    The windows are consecutive runs of ``values`` in order; they are summed a
    block of about ``_FSUM_BLOCK`` values at a time.
    """
    n = len(starts)
    out = np.empty(n)
    i = 0
    while i < n:
        low = int(starts[i])
        j = max(int(np.searchsorted(ends, low + _FSUM_BLOCK, side="right")), i + 1)
        listed = values[low : int(ends[j - 1])].tolist()
        bounds = zip((starts[i:j] - low).tolist(), (ends[i:j] - low).tolist(), strict=True)
        out[i:j] = [exact_sum(listed[a:b]) for a, b in bounds]
        i = j
    return out


def _hold_as_sketch(state: FamilyState, sketch: PaneSketch, pane_ms: int) -> None:
    """Keep ``sketch``'s series of its pane as the sketch, their samples dropped."""
    end = sketch.start + pane_ms
    kept: list[Chunk] = []
    for chunk in state.chunks:
        if sketch.start <= chunk.ts < end:
            mask = ~np.isin(chunk.series, sketch.series)
            if not mask.all():
                if mask.any():
                    kept.append(Chunk(chunk.ts, chunk.series[mask], chunk.values[mask]))
                continue
        kept.append(chunk)
    state.chunks = kept
    state.sketches[sketch.start] = sketch
    state.changed_panes.add(sketch.start)


def _with_cpu_busy(closed: ClosedWindows) -> ClosedWindows:
    """``closed`` with the CPU busy ratios of its windows appended (see :mod:`streams.cpu`)."""
    rows = np.flatnonzero(closed.row_flags(CPU_SECONDS, _is_cpu_time) & ~np.isnan(closed.rate))
    if not len(rows):
        return closed
    states = closed.states
    # Each CPU is named by the index of its first series in its state: an
    # order that survives restarts, so float sums over CPUs repeat exactly.
    cpu_first = np.concatenate([_cpu_firsts(state) for state in states])
    offsets = np.zeros(len(states), dtype=np.int64)
    offsets[1:] = np.cumsum([len(state.series) for state in states[:-1]])
    owner = closed.state[rows]
    cpu = cpu_first[offsets[owner] + closed.series[rows]]
    idle = closed.row_flags("mode=idle", _is_idle)[rows]
    size, start, rate = closed.size_ms[rows], closed.start[rows], closed.rate[rows]
    order = np.lexsort((cpu, start, size, owner))  # stable: a CPU's modes keep series order
    owner, size, start, cpu = owner[order], size[order], start[order], cpu[order]
    idle, rate = idle[order], rate[order]
    window_change = np.ones(len(order), dtype=bool)
    window_change[1:] = (
        (owner[1:] != owner[:-1]) | (size[1:] != size[:-1]) | (start[1:] != start[:-1])
    )
    cpu_change = window_change.copy()
    cpu_change[1:] |= cpu[1:] != cpu[:-1]
    per_cpu = np.flatnonzero(cpu_change)
    total = np.add.reduceat(rate, per_cpu)
    idle_rate = np.add.reduceat(np.where(idle, rate, 0.0), per_cpu)
    usable = (np.add.reduceat(idle.astype(np.int64), per_cpu) > 0) & (total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        busy = np.clip(1.0 - idle_rate / total, 0.0, 1.0)
    # The host: the usable CPUs' idle and total rates summed, in CPU order.
    window_of_cpu = np.cumsum(window_change[per_cpu]) - 1
    windows = np.flatnonzero(window_change[per_cpu])
    host_idle = np.add.reduceat(np.where(usable, idle_rate, 0.0), windows)
    host_total = np.add.reduceat(np.where(usable, total, 0.0), windows)
    host_usable = np.add.reduceat(usable.astype(np.int64), windows) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        host_busy = np.clip(1.0 - host_idle / host_total, 0.0, 1.0)
    out_owner: list[int] = []
    out_series: list[int] = []
    out_window: list[int] = []
    out_value: list[float] = []
    cpu_owner = owner[per_cpu].tolist()
    cpu_index = cpu[per_cpu].tolist()
    for k in np.flatnonzero(usable).tolist():
        state = states[cpu_owner[k]]
        label = dict(state.series[cpu_index[k]][1])["cpu"]
        out_owner.append(cpu_owner[k])
        out_series.append(_busy_series(state, (("cpu", label),)))
        out_window.append(int(window_of_cpu[k]))
        out_value.append(float(busy[k]))
    window_owner = cpu_owner and owner[per_cpu][windows].tolist()
    for w in np.flatnonzero(host_usable).tolist():
        out_owner.append(window_owner[w])
        out_series.append(_busy_series(states[window_owner[w]], ()))
        out_window.append(w)
        out_value.append(float(host_busy[w]))
    if not out_owner:
        return closed
    first_row = per_cpu[windows]
    picked = np.asarray(out_window, dtype=np.int64)
    values = np.asarray(out_value)
    return ClosedWindows(
        states=states,
        state=np.concatenate([closed.state, np.asarray(out_owner, dtype=np.int64)]),
        size_ms=np.concatenate([closed.size_ms, size[first_row][picked]]),
        start=np.concatenate([closed.start, start[first_row][picked]]),
        series=np.concatenate([closed.series, np.asarray(out_series, dtype=np.int64)]),
        count=np.concatenate([closed.count, np.ones(len(values), dtype=np.int64)]),
        stats=np.concatenate([closed.stats, np.repeat(values[:, None], 9, axis=1)]),
        rate=np.concatenate([closed.rate, np.full(len(values), np.nan)]),
        quantile_error=np.concatenate([closed.quantile_error, np.zeros(len(values))]),
        region=closed.region,
    )


def _is_idle(key: SeriesKey, _kind: MetricKind) -> bool:
    return ("mode", "idle") in key[1]


def _cpu_firsts(state: FamilyState) -> Int64Array:
    """Per series: the index of the first series with the same ``cpu`` label; -1: none."""
    cached = state.cpu_firsts
    if cached is None or len(cached) != len(state.series):
        first: dict[str, int] = {}
        codes = []
        for index, (metric, labels) in enumerate(state.series):
            cpu = dict(labels).get("cpu") if metric == CPU_SECONDS else None
            codes.append(-1 if cpu is None else first.setdefault(cpu, index))
        cached = state.cpu_firsts = np.asarray(codes, dtype=np.int64)
    return cached


def _busy_series(state: FamilyState, labels: tuple[tuple[str, str], ...]) -> int:
    return state.series_index((CPU_BUSY_RATIO, labels), MetricKind.GAUGE)

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
last, exact quantiles, and the counter increase with resets. So a larger
window is exactly the union of its panes, whatever the order they closed in.
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
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.state import (
    Chunk,
    FamilyState,
    Float64Array,
    Int32Array,
    SeriesKey,
    series_key,
)
from hoststream.streams.windows import DEFAULT_WINDOWS, WindowSize, parse_windows

__all__ = ["DEFAULT_GRACE_MS", "QUANTILES", "ClosedWindows", "Outcome", "WindowAggregator"]

#: How long after a window's end its late samples are still merged.
DEFAULT_GRACE_MS = 10_000

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


@dataclass(slots=True)
class ClosedWindows:
    """Windows closed by one call of :meth:`WindowAggregator.close`, as columns.

    Row ``i`` is the window ``[start[i], start[i] + size_ms[i])`` of series
    ``series[i]`` of ``states[state[i]]``. ``rate`` is NaN where a window has
    no counter rate. The windows of sampled series come first, sorted by
    state, window size, series and start; the CPU busy ratios derived from
    them follow (their series are in the state's series table too). Every
    record made from them carries ``region``, the aggregator's.
    """

    states: list[FamilyState]
    state: Int64Array
    size_ms: Int64Array
    start: Int64Array
    series: Int64Array
    count: Int64Array
    stats: Float64Array  # columns: sum, min, max, mean, last, p50, p90, p95, p99
    rate: Float64Array
    region: str | None = None

    def __len__(self) -> int:
        return len(self.state)

    @classmethod
    def empty(cls) -> ClosedWindows:
        nothing = np.zeros(0, dtype=np.int64)
        return cls([], nothing, nothing, nothing, nothing, nothing, np.zeros((0, 9)), np.zeros(0))

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
            quantile_relative_error=0.0,
            labels=dict(labels),
            rate_per_second=None if math.isnan(rate) else rate,
            region=self.region,
        )

    def row_flags(
        self, name: str, judge: Callable[[SeriesKey, MetricKind], bool]
    ) -> npt.NDArray[np.bool_]:
        """``judge`` of each row's series (see :meth:`FamilyState.series_flags`)."""
        return _row_flags(self.states, self.state, self.series, name, judge)

    def by_state(
        self, wanted: frozenset[tuple[str, int]] | None = None
    ) -> dict[int, list[WindowAggregate]]:
        """Records per state number, in the order windows closed for each series.

        Args:
            wanted: only (metric, window size) pairs in this set; None: all.
        """
        out: dict[int, list[WindowAggregate]] = {}
        rows: Iterable[int]
        if wanted is None:
            rows = range(len(self.state))
        else:
            metrics = {metric for metric, _ in wanted}
            sizes = {size for _, size in wanted}
            candidates = self.row_flags(
                f"metric in {sorted(metrics)}", lambda key, _: key[0] in metrics
            ) & np.isin(self.size_ms, sorted(sizes))
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
        """
        if grace_ms < 0:
            raise ValueError(f"grace must be 0 or more, got {grace_ms} ms")
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
            keep_from = self.largest.start_of(after)
            state.chunks = [c for c in state.chunks if c.ts >= keep_from]
            if took:
                states.append(state)
        if not states:
            return ClosedWindows.empty()
        return self._reduce(
            states,
            np.repeat(np.asarray(times, dtype=np.int64), lengths),
            np.repeat(np.asarray(groups, dtype=np.int64), lengths),
            np.concatenate(series).astype(np.int64),
            np.concatenate(values),
        )

    def _reduce(
        self,
        states: list[FamilyState],
        ts: Int64Array,
        group: Int64Array,
        series: Int64Array,
        values: Float64Array,
    ) -> ClosedWindows:
        n_sizes = len(self.windows)
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
        count = last - first + 1
        # Counter increase: each step up, or the new value after a reset.
        step = np.zeros(n)
        step[1:] = np.where(v[1:] >= v[:-1], v[1:] - v[:-1], v[1:])
        step[boundary] = 0.0
        increase = np.add.reduceat(step, first)
        dt = ts[last] - ts[first]
        # Quantiles: the values of each window sorted, then the order statistic
        # sorted(values)[floor(q * (n - 1))] picked per window.
        window_of_row = np.cumsum(boundary) - 1
        sorted_v = v[np.lexsort((v, window_of_row))]
        listed = v.tolist()
        bounds = zip(first.tolist(), (last + 1).tolist(), strict=True)
        sums = np.asarray([math.fsum(listed[a:b]) for a, b in bounds])
        stats = np.empty((len(first), 9))
        stats[:, 0] = sums
        stats[:, 1] = np.minimum.reduceat(v, first)
        stats[:, 2] = np.maximum.reduceat(v, first)
        stats[:, 3] = sums / count
        stats[:, 4] = v[last]
        for column, (_, q) in enumerate(QUANTILES, start=5):
            stats[:, column] = sorted_v[first + np.floor(q * (count - 1)).astype(np.int64)]
        keys = gkey[first]
        owner = (keys >> _SERIES_BITS) // n_sizes
        series_of = keys & ((1 << _SERIES_BITS) - 1)
        counter = _row_flags(states, owner, series_of, "counter", _is_counter)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(counter & (count >= 2) & (dt > 0), increase * 1000.0 / dt, np.nan)
        closed = ClosedWindows(
            states=states,
            state=owner,
            size_ms=size_ms[first],
            start=start[first],
            series=series_of,
            count=count,
            stats=stats,
            rate=rate,
            region=self.region,
        )
        if self.derive_cpu_utilisation:
            closed = _with_cpu_busy(closed)
        for size in self.windows:
            emitted = int((closed.size_ms == size.ms).sum())
            if emitted:
                self.metrics.windows_emitted.labels(size.label).inc(emitted)
        return closed


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
    return int(state.series_indexes([((CPU_BUSY_RATIO, labels), MetricKind.GAUGE)])[0])

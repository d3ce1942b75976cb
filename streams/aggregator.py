"""The aggregation core: metric events in, closed window aggregates out. No Kafka.

Start here. :class:`WindowAggregator` holds the configuration (window sizes,
grace period, sketch accuracy) and works on one :class:`~streams.state.FamilyState`
per (host, family), which the caller stores; the Faust application keeps
them in a table. Everything here is deterministic: the same events in the same
order give the same aggregates, whatever redeliveries happen in between.

How a window closes:

- Event time: each (host, family) has a watermark, the latest event timestamp
  seen. A window closes once the watermark reaches its end plus the grace
  period. A sample arriving for a closed window is late: it is counted
  (``hoststream_stream_late_samples_total``) and dropped.
- Wall clock: :meth:`WindowAggregator.close_on_wall_clock` closes what a quiet
  host left open, once wall time reaches a window's end plus grace. The caller
  decides when a host is quiet (see :meth:`WindowAggregator.quiet_after_ms`).

Windows of the smallest configured size ("panes") keep their samples; larger
windows are rolled up from closed panes, so each sample is summarized once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from hoststream.schemas.records import MetricEvent, MetricKind, WindowAggregate
from hoststream.streams.cpu import cpu_busy_aggregates
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.sketch import DEFAULT_RELATIVE_ACCURACY
from hoststream.streams.state import FamilyState, Pane, Rollup, SeriesKey, series_key
from hoststream.streams.summary import Summary
from hoststream.streams.windows import DEFAULT_WINDOWS, WindowSize, parse_windows

__all__ = ["DEFAULT_GRACE_MS", "Outcome", "WindowAggregator"]

#: How long after a window's end its samples are still merged.
DEFAULT_GRACE_MS = 10_000


@dataclass(slots=True)
class Outcome:
    """What adding one event did: the windows it closed and the samples it dropped."""

    aggregates: list[WindowAggregate] = field(default_factory=list)
    late_samples: int = 0
    invalid_samples: int = 0


class WindowAggregator:
    """Tumbling event-time windows per (host, metric, labels), with grace and rollups."""

    def __init__(
        self,
        windows: Sequence[str | WindowSize] = DEFAULT_WINDOWS,
        *,
        grace_ms: int = DEFAULT_GRACE_MS,
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
        derive_cpu_utilisation: bool = True,
        metrics: StreamMetrics | None = None,
    ) -> None:
        """Configure the windows.

        Args:
            windows: window sizes such as ``"10s"``, ``"1m"``, ``"5m"``; each a
                multiple of the smallest.
            grace_ms: how long after a window's end (event time) its late
                samples are still merged; 0 or more.
            relative_accuracy: guaranteed relative error of p50 to p99.
            derive_cpu_utilisation: also emit ``hoststream_cpu_busy_ratio``
                from ``node_cpu_seconds_total`` (see :mod:`streams.cpu`).
            metrics: the counters to update; default: a registry of their own (not served).
        """
        if grace_ms < 0:
            raise ValueError(f"grace must be 0 or more, got {grace_ms} ms")
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative accuracy must lie in (0, 1), got {relative_accuracy}")
        self.windows = parse_windows(windows)
        self.pane = self.windows[0]
        self.grace_ms = grace_ms
        self.relative_accuracy = relative_accuracy
        self.derive_cpu_utilisation = derive_cpu_utilisation
        self.metrics = metrics if metrics is not None else StreamMetrics(CollectorRegistry())

    def new_state(self, host: str, family: str) -> FamilyState:
        return FamilyState(host=host, family=family)

    def add(self, state: FamilyState, event: MetricEvent) -> Outcome:
        """Merge one event's samples into ``state``, then close what its time closes."""
        if (event.host, event.family) != (state.host, state.family):
            raise ValueError(
                f"event of {event.host}/{event.family} given to the state of"
                f" {state.host}/{state.family}"
            )
        outcome = Outcome()
        family_label = event.family
        self.metrics.events.labels(family_label).inc()
        ts = event.timestamp_ms
        state.interval_ms = event.interval_ms
        if state.closed_until is not None and ts < state.closed_until:
            outcome.late_samples = len(event.samples)
            self.metrics.late_samples.labels(family_label).inc(outcome.late_samples)
        else:
            pane = state.panes.setdefault(self.pane.start_of(ts), Pane())
            for sample in event.samples:
                value = float(sample.value)
                if not math.isfinite(value):
                    outcome.invalid_samples += 1
                    continue
                key = series_key(sample.name, sample.labels)
                # Keyed by timestamp: the same sample delivered twice overwrites itself.
                pane.points.setdefault(key, {})[ts] = value
                pane.kinds[key] = sample.kind
            if outcome.invalid_samples:
                self.metrics.invalid_samples.labels(family_label).inc(outcome.invalid_samples)
        state.watermark = ts if state.watermark is None else max(state.watermark, ts)
        outcome.aggregates = self._close(state, state.watermark)
        return outcome

    def quiet_after_ms(self, state: FamilyState) -> int:
        """How long without events before the state's host counts as quiet.

        At least the grace period, and two collection intervals, so that a host
        that reports every 30 s is not taken for quiet between two reports.
        """
        return max(self.grace_ms, 2 * state.interval_ms)

    def next_close_ms(self, state: FamilyState) -> int | None:
        """When the earliest open window's end plus grace comes; None with nothing open."""
        ends = [start + self.pane.ms for start in state.panes]
        ends += [start + size for size, by_start in state.rollups.items() for start in by_start]
        return min(ends) + self.grace_ms if ends else None

    def close_on_wall_clock(self, state: FamilyState, now_ms: int) -> list[WindowAggregate]:
        """Close the windows whose end plus grace has passed in wall-clock time.

        Call it only for a quiet host: for one that still reports, event time
        closes windows, and closing them on wall time would drop samples that
        are merely delayed in Kafka.
        """
        closed = self._close(state, now_ms)
        if closed:
            self.metrics.wall_clock_closes.inc(
                len({(a.window_size_ms, a.window_start) for a in closed})
            )
        return closed

    def _close(self, state: FamilyState, limit_ms: int) -> list[WindowAggregate]:
        """Close every window that ends at or before ``limit_ms - grace``."""
        horizon = limit_ms - self.grace_ms
        out: list[WindowAggregate] = []
        for start in sorted(state.panes):
            if start + self.pane.ms > horizon:
                break
            pane = state.panes.pop(start)
            summaries = {
                key: (
                    pane.kinds[key],
                    Summary.of_points(list(points.items()), self.relative_accuracy),
                )
                for key, points in sorted(pane.points.items())
                if points
            }
            out += self._emit(state.host, self.pane, start, summaries)
            self._roll_up(state, start, summaries)
        for size in self.windows[1:]:
            by_start = state.rollups.get(size.ms, {})
            for start in sorted(by_start):
                if start + size.ms > horizon:
                    break
                out += self._emit(state.host, size, start, by_start.pop(start).series)
            if not by_start:
                state.rollups.pop(size.ms, None)
        # Every window ending by the horizon is closed now, including ones that
        # never received a sample: later samples for them are late.
        boundary = self.pane.start_of(horizon)
        if state.closed_until is None or boundary > state.closed_until:
            state.closed_until = boundary
        return out

    def _roll_up(
        self,
        state: FamilyState,
        pane_start: int,
        summaries: Mapping[SeriesKey, tuple[MetricKind, Summary]],
    ) -> None:
        for size in self.windows[1:]:
            by_start = state.rollups.setdefault(size.ms, {})
            rollup = by_start.setdefault(size.start_of(pane_start), Rollup())
            if pane_start in rollup.panes:
                continue
            rollup.panes.append(pane_start)
            for key, (kind, summary) in summaries.items():
                previous = rollup.series.get(key)
                merged = summary if previous is None else previous[1].merged(summary)
                rollup.series[key] = (kind, merged)

    def _emit(
        self,
        host: str,
        size: WindowSize,
        start: int,
        series: Mapping[SeriesKey, tuple[MetricKind, Summary]],
    ) -> list[WindowAggregate]:
        out = [
            summary.to_aggregate(
                host=host,
                metric=metric,
                labels=dict(labels),
                kind=kind,
                window_size_ms=size.ms,
                window_start=start,
            )
            for (metric, labels), (kind, summary) in sorted(series.items())
        ]
        if self.derive_cpu_utilisation:
            out += cpu_busy_aggregates(host, series, window_size_ms=size.ms, window_start=start)
        if out:
            self.metrics.windows_emitted.labels(size.label).inc(len(out))
        return out

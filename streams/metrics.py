"""The stream processor's own Prometheus metrics."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["StreamMetrics"]


class StreamMetrics:
    """Counters of what the stream processor took in, dropped and emitted, and its lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Register the counters.

        Args:
            registry: where to register (the component runtime's); tests pass
                their own to read exact values.
        """
        self.events = Counter(
            "hoststream_stream_events",
            "Metric events aggregated, by family.",
            ["family"],
            registry=registry,
        )
        self.late_samples = Counter(
            "hoststream_stream_late_samples",
            "Samples that arrived after their window had closed (beyond the grace"
            " period) and were not merged, by family.",
            ["family"],
            registry=registry,
        )
        self.invalid_samples = Counter(
            "hoststream_stream_invalid_samples",
            "Samples dropped because their value was NaN or infinite, by family.",
            ["family"],
            registry=registry,
        )
        self.rejected_messages = Counter(
            "hoststream_stream_rejected_messages",
            "Messages that did not decode as a MetricEvent, by topic; sent to <topic>.dlq.",
            ["topic"],
            registry=registry,
        )
        self.windows_emitted = Counter(
            "hoststream_stream_windows_emitted",
            "Window aggregates emitted, by window size.",
            ["window"],
            registry=registry,
        )
        self.alerts = Counter(
            "hoststream_stream_alerts",
            "Alert events emitted to the alerts topic, by state (firing, resolved).",
            ["state"],
            registry=registry,
        )
        for state in ("firing", "resolved"):
            self.alerts.labels(state)
        self.wall_clock_closes = Counter(
            "hoststream_stream_wall_clock_closes",
            "Windows closed on wall-clock time because their host went quiet.",
            registry=registry,
        )
        self.states_expired = Counter(
            "hoststream_stream_states_expired",
            "Window states dropped because their host sent nothing for the retention period.",
            registry=registry,
        )
        self.state_series = Gauge(
            "hoststream_stream_state_series",
            "Series whose window state this worker holds in memory.",
            registry=registry,
        )
        self.state_bytes = Gauge(
            "hoststream_stream_state_bytes",
            "Approximate bytes of window state (open samples and series tables) held in memory.",
            registry=registry,
        )
        # Set by streams.lag.ConsumerLag, only for the partitions this worker owns.
        self.consumer_lag = Gauge(
            "hoststream_stream_consumer_lag",
            "Messages between the source partition's end and the worker's committed"
            " offset (its fetch position before its first commit), per partition it owns.",
            ["topic", "partition"],
            registry=registry,
        )

    def known_labels(
        self, families: Sequence[str], topics: Sequence[str], windows: Sequence[str]
    ) -> None:
        """Create the series of these label values at zero, so dashboards show 0, not "No data".

        Args:
            families: the metric families read.
            topics: the source topics (for rejected messages).
            windows: the window sizes emitted, as labels (``1m``).
        """
        for family in families:
            for counter in (self.events, self.late_samples, self.invalid_samples):
                counter.labels(family)
        for topic in topics:
            self.rejected_messages.labels(topic)
        for window in windows:
            self.windows_emitted.labels(window)

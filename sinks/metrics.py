"""Prometheus metrics of a sink's consumer loop, in a registry the caller owns."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SinkMetrics"]

# Batch writes range from a few ms (a small VictoriaMetrics import) to many
# seconds (a database that is failing over).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class SinkMetrics:
    """The counters, histogram and gauges of one sink.

    Args:
        registry: where to register; create one :class:`SinkMetrics` per
            registry (a second one would register the same names twice).
        sink: the value of the ``sink`` label, e.g. ``victoriametrics``.
    """

    def __init__(self, registry: CollectorRegistry, sink: str) -> None:
        self.sink = sink
        self._written = Counter(
            "hoststream_sink_records_written",
            "Records stored by the sink (committed to Kafka once the batch is done).",
            ["sink"],
            registry=registry,
        )
        self._retried = Counter(
            "hoststream_sink_write_retries",
            "Batch writes (or dead-letter sends, or commits) that failed and will be retried.",
            ["sink"],
            registry=registry,
        )
        self._dead_lettered = Counter(
            "hoststream_sink_records_dead_lettered",
            "Records sent to the dead-letter topic because they can never be stored.",
            ["sink", "error"],
            registry=registry,
        )
        self._latency = Histogram(
            "hoststream_sink_batch_write_seconds",
            "Time taken by one successful or failed batch write.",
            ["sink"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._lag = Gauge(
            "hoststream_sink_consumer_lag",
            "Messages between the partition's end and the sink's committed offset.",
            ["sink", "topic", "partition"],
            registry=registry,
        )
        self._store_dropped = Counter(
            "hoststream_sink_store_dropped",
            "Data the destination changed or left out after accepting it, by the"
            " destination's own counter (VictoriaMetrics: dropped labels, truncated values).",
            ["sink", "counter"],
            registry=registry,
        )
        self._paused = Gauge(
            "hoststream_sink_paused",
            "1 while the sink has paused its partitions because the destination is down.",
            ["sink"],
            registry=registry,
        )
        # Every series with a known label set exists from the start, at zero,
        # so a dashboard shows "0 retries" rather than "No data" (Prometheus'
        # instrumentation practice). Lag appears per partition once assigned.
        for counter in (self._written, self._retried):
            counter.labels(sink)
        self._latency.labels(sink)
        self._paused.labels(sink).set(0)

    def written(self, count: int) -> None:
        if count:
            self._written.labels(self.sink).inc(count)

    def retried(self) -> None:
        self._retried.labels(self.sink).inc()

    def dead_lettered(self, error: str, count: int = 1) -> None:
        self._dead_lettered.labels(self.sink, error).inc(count)

    def store_dropped(self, counter: str, count: float) -> None:
        self._store_dropped.labels(self.sink, counter).inc(count)

    def write_seconds(self, seconds: float) -> None:
        self._latency.labels(self.sink).observe(seconds)

    def lag(self, topic: str, partition: int, messages: int) -> None:
        self._lag.labels(self.sink, topic, str(partition)).set(messages)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop a revoked partition's lag, so another member's number is not shadowed."""
        with contextlib.suppress(KeyError):
            self._lag.remove(self.sink, topic, str(partition))

    def paused(self, is_paused: bool) -> None:
        self._paused.labels(self.sink).set(1 if is_paused else 0)

"""Bulk encoding gives exactly the Avro serializer's bytes."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.schemas import MetricEvent, MetricKind, Sample, WindowAggregate, codec_for
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.encode import AggregateEncoder
from hoststream.streams.metrics import StreamMetrics

T0 = 1_798_761_600_000
SETTINGS = Settings(schema_registry_url=None)
EVENTS = codec_for(SETTINGS, MetricEvent)
AGGREGATES = codec_for(SETTINGS, WindowAggregate)
MODES = ("idle", "user", "system", "iowait")


def cpu_event(ts: int, scale: float, host_labels=None, cpus: int = 2) -> MetricEvent:
    samples = tuple(
        Sample(
            "node_cpu_seconds_total",
            scale * (i + 1),
            {"cpu": str(i // 4), "mode": MODES[i % 4]},
            MetricKind.COUNTER,
        )
        for i in range(4 * cpus)
    )
    return MetricEvent("web-1", "cpu", ts, samples, 10_000, 7, host_labels or {})


def as_columns(event: MetricEvent):
    series = tuple(((s.name, tuple(sorted(s.labels.items()))), s.kind) for s in event.samples)
    return event.host, event.family, event.timestamp_ms, series, [s.value for s in event.samples]


def test_bulk_encoded_aggregates_are_the_serializers_bytes() -> None:
    aggregator = WindowAggregator(["1m", "5m"], metrics=StreamMetrics(CollectorRegistry()))
    state = aggregator.new_state("web-1", "cpu")
    for step in range(40):
        event = cpu_event(T0 + step * 10_000, 1.0 + step)
        series = state.series_indexes(as_columns(event)[3])
        values = np.asarray(as_columns(event)[4])
        aggregator.accept(state, event.timestamp_ms, 10_000, series, values)
    closed = aggregator.close_at([(state, T0 + 3_600_000)])
    topics = {60_000: "metrics.agg.1m", 300_000: "metrics.agg.5m"}
    encoded = AggregateEncoder(AGGREGATES.serializer, topics).encode(closed)
    records = list(closed.aggregates())
    assert len(encoded) == len(records) > 10
    assert any(r.rate_per_second is not None for r in records)
    assert any(r.metric == "hoststream_cpu_busy_ratio" for r in records)
    for (size, key, value), record in zip(encoded, records, strict=True):
        assert (size, key) == (record.window_size_ms, record.host.encode())
        assert value == AGGREGATES.serializer(record)


def test_bulk_encoded_aggregates_carry_the_region_as_the_serializer_writes_it() -> None:
    aggregator = WindowAggregator(
        ["1m"], metrics=StreamMetrics(CollectorRegistry()), region="region-b"
    )
    state = aggregator.new_state("web-1", "cpu")
    for step in range(10):
        event = cpu_event(T0 + step * 10_000, 1.0 + step)
        series = state.series_indexes(as_columns(event)[3])
        aggregator.accept(
            state, event.timestamp_ms, 10_000, series, np.asarray(as_columns(event)[4])
        )
    closed = aggregator.close_at([(state, T0 + 3_600_000)])
    encoder = AggregateEncoder(AGGREGATES.serializer, {60_000: "metrics.agg.1m"})
    encoded = encoder.encode(closed)
    records = list(closed.aggregates())
    assert {r.region for r in records} == {"region-b"}
    for (_, _, value), record in zip(encoded, records, strict=True):
        assert value == AGGREGATES.serializer(record)
        assert AGGREGATES.deserializer(value).region == "region-b"
    # The header was learnt: the bulk path wrote them, not the serializer one by one.
    assert encoder._headers["metrics.agg.1m"] is not None

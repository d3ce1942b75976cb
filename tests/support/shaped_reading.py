"""Helpers of the unit tests of the sinks' readers by shape (``sinks.vm_import``,
``sinks.aggregate_reader``): they read the real single-object encoding."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hoststream.errors import SerializationError
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import (
    MetricKind,
    SingleObjectAvroDeserializer,
    SingleObjectAvroSerializer,
    WindowAggregate,
)
from hoststream.sinks.aggregate_reader import AggregateReader, AggregateSeries, AggregateValues
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.metrics import StreamMetrics

__all__ = [
    "T0",
    "CountingDeserializer",
    "aggregate",
    "assert_a_negative_kind_is_refused",
    "derive",
    "encode_aggregate",
    "fleet_aggregates",
    "read_by_shape",
]

#: The first window's start of the aggregates made here (2027-01-15).
T0 = 1_800_000_000_000

#: An aggregate in the single-object encoding.
encode_aggregate = SingleObjectAvroSerializer(WindowAggregate)


def derive(series: AggregateSeries) -> str:
    """Stands in for a sink's derivation: records that it ran, once per series."""
    return f"{series.host}/{series.metric}"


def aggregate(window: int = 0, **overrides: Any) -> WindowAggregate:
    """A counter's aggregate of the ``window``-th minute from :data:`T0`, ``overrides`` applied."""
    fields: dict[str, Any] = {
        "host": "web-1",
        "metric": "node_network_receive_bytes_total",
        "kind": MetricKind.COUNTER,
        "window_size_ms": 60_000,
        "window_start": T0 + window * 60_000,
        "window_end": T0 + (window + 1) * 60_000,
        "count": 6 + window,
        "sum": 60.0 + window,
        "min": 5.0,
        "max": 15.0,
        "mean": 10.0,
        "last": 15.0 + window,
        "p50": 10.0,
        "p90": 14.0,
        "p95": 14.5,
        "p99": 15.0,
        "quantile_relative_error": 0.01,
        "labels": {"device": "eth0"},
        "rate_per_second": 0.1666 * (window + 1),
    }
    fields.update(overrides)
    return WindowAggregate(**fields)


class CountingDeserializer:
    """The real single-object deserializer of ``record_type``, counting the records it
    decodes in full."""

    def __init__(self, record_type: type[Any]) -> None:
        self.inner = SingleObjectAvroDeserializer(record_type)
        self.calls = 0

    def __call__(self, data, ctx=None):
        self.calls += 1
        return self.inner(data, ctx)


def read_by_shape(
    aggregates: Sequence[WindowAggregate], derive: Callable[[AggregateSeries], Any]
) -> list[AggregateValues]:
    """``aggregates`` encoded and read back by a new reader with ``derive``; each must be
    read by its series' shape."""
    reader = AggregateReader(SingleObjectAvroDeserializer(WindowAggregate), derive)
    read = [reader(encode_aggregate(a)) for a in aggregates]
    assert all(isinstance(r, AggregateValues) for r in read)
    return read  # type: ignore[return-value]


def fleet_aggregates(hosts: int, windows: int) -> list[WindowAggregate]:
    """The 1m and 5m aggregates of a simulated fleet, as the stream processor computes them."""
    aggregator = WindowAggregator(
        ("1m", "5m"), grace_ms=0, metrics=StreamMetrics(CollectorRegistry())
    )
    fleet = SimulatedFleet(hosts, seed=5)
    states: dict[tuple[str, str], object] = {}
    out: list[WindowAggregate] = []
    for tick in range(windows * 6 + 1):
        for event in fleet.events(T0 + tick * 10_000):
            key = (event.host, event.family)
            if key not in states:
                states[key] = aggregator.new_state(event.host, event.family)
            out += aggregator.add(states[key], event).aggregates
    return out


def assert_a_negative_kind_is_refused(
    reader: Any, good: Callable[[int], bytes], with_negative_kind: Callable[[int], bytes]
) -> Any:
    """Check that ``reader`` refuses a record whose kind index is -2 (as the
    deserializer does) before and after it learnt the record's shape, alone and
    in ``read_many``; return what ``read_many`` read of a good record beside one.

    ``good(i)`` and ``with_negative_kind(i)`` are the i-th record's bytes, as
    written and with the kind's byte (index 1, 0x02) corrupted to index -2
    (0x03): an Avro reader looking the symbol up from the end would read a gauge.
    """
    with pytest.raises(SerializationError, match="enum index -2"):
        reader(with_negative_kind(0))
    reader(good(1))  # the shape learned
    with pytest.raises(SerializationError, match="enum index -2"):
        reader(with_negative_kind(2))
    read = reader.read_many([good(3), with_negative_kind(4)], lambda i: None)
    assert isinstance(read[1], SerializationError)
    return read[0]

"""Helpers of the unit tests of the sinks' readers by shape (``sinks.vm_import``,
``sinks.aggregate_reader``): they read the real single-object encoding."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import (
    SingleObjectAvroDeserializer,
    SingleObjectAvroSerializer,
    WindowAggregate,
)
from hoststream.sinks.aggregate_reader import AggregateReader, AggregateSeries, AggregateValues
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.metrics import StreamMetrics

__all__ = ["CountingDeserializer", "fleet_aggregates", "read_by_shape"]

T0 = 1_800_000_000_000

_encode_aggregate = SingleObjectAvroSerializer(WindowAggregate)


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
    read = [reader(_encode_aggregate(a)) for a in aggregates]
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

"""Helpers of the unit tests of the sinks' readers by shape (``sinks.vm_import``,
``sinks.aggregate_reader``): they read the real single-object encoding."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hoststream.schemas import (
    SingleObjectAvroDeserializer,
    SingleObjectAvroSerializer,
    WindowAggregate,
)
from hoststream.sinks.aggregate_reader import AggregateReader, AggregateSeries, AggregateValues

__all__ = ["CountingDeserializer", "read_by_shape"]

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

"""Aggregates read by shape give the import lines of aggregate_lines, byte for byte."""

from __future__ import annotations

from dataclasses import replace

import orjson

from hoststream.schemas import MetricKind, WindowAggregate
from hoststream.sinks.vm_aggregates import aggregate_import_lines, line_parts
from hoststream.sinks.vm_import import import_body
from hoststream.sinks.vm_series import aggregate_lines
from tests.support.shaped_reading import fleet_aggregates, read_by_shape

T0 = 1_800_000_000_000


def reference(aggregates: list[WindowAggregate]) -> bytes:
    """The lines as aggregate_lines writes them, one orjson call per line."""
    return b"".join(orjson.dumps(line) + b"\n" for a in aggregates for line in aggregate_lines(a))


def test_a_fleets_aggregates_make_the_bytes_aggregate_lines_makes() -> None:
    aggregates = fleet_aggregates(3, windows=6)
    kinds = {a.kind for a in aggregates}
    assert kinds == {MetricKind.GAUGE, MetricKind.COUNTER}
    assert {a.window_size_ms for a in aggregates} == {60_000, 300_000}
    read = read_by_shape(aggregates, line_parts)
    assert b"".join(aggregate_import_lines(read)) == reference(aggregates)
    assert import_body(read) == reference(aggregates)


def test_values_with_exponents_regions_and_odd_labels_make_the_same_bytes() -> None:
    base = WindowAggregate(
        host="web-1",
        metric="node_load1",
        kind=MetricKind.GAUGE,
        window_size_ms=60_000,
        window_start=T0,
        window_end=T0 + 60_000,
        count=1,
        sum=1e-300,
        min=-0.0,
        max=2.5e20,
        mean=1 / 3,
        last=123456789.125,
        p50=1e16,
        p90=1e-7,
        p95=0.1,
        p99=5e-324,
        quantile_relative_error=0.01,
        labels={"path": 'C:\\ "quoted" ü', "empty": "", "instance": "not-this"},
    )
    aggregates = [
        base,
        replace(base, region="eu-west", host="h" * 90),
        replace(base, kind=MetricKind.COUNTER, rate_per_second=0.0, labels={}),
        replace(base, window_start=T0 + 60_000, window_end=T0 + 120_000, count=2**40),
    ]
    read = read_by_shape(aggregates, line_parts)
    assert b"".join(aggregate_import_lines(read)) == reference(aggregates)


def test_one_aggregate_and_none_make_whole_bodies() -> None:
    [one] = read_by_shape(fleet_aggregates(1, windows=1)[:1], line_parts)
    assert b"".join(aggregate_import_lines([one])) == reference([one.aggregate()])
    assert aggregate_import_lines([]) == []

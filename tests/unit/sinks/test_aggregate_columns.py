"""A batch of window aggregates read at once reads as each of them read alone."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hoststream.errors import SerializationError
from hoststream.schemas import MetricKind, WindowAggregate
from hoststream.schemas.validation import ValidationLimits, Validator
from hoststream.sinks.aggregate_columns import read_columns
from hoststream.sinks.aggregate_reader import STATS_FIELDS, AggregateReader, AggregateValues
from tests.support.shaped_reading import (
    T0,
    CountingDeserializer,
    aggregate,
    derive,
    fleet_aggregates,
)
from tests.support.shaped_reading import encode_aggregate as encode


def no_context(_index: int) -> None:
    return None


def outcome(read: Any) -> Any:
    """What a reading says, comparable across readers: the whole record, or the error's type."""
    if isinstance(read, Exception):
        return type(read)
    whole = read.aggregate() if isinstance(read, AggregateValues) else read
    return repr(whole)  # by repr: a NaN equals itself there


def read_alone(values: list[bytes]) -> list[Any]:
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    out: list[Any] = []
    for value in values:
        try:
            out.append(reader(value))
        except SerializationError as exc:
            out.append(exc)
    return out


def test_the_columns_are_the_fields_of_each_body() -> None:
    written = [
        aggregate(),
        aggregate(3, kind=MetricKind.GAUGE, rate_per_second=None, labels={}),
        aggregate(region="eu-west", count=2**40, labels={"a": "1", "b": "2", "c": "3"}),
    ]
    bodies = [encode(a) for a in written]
    columns = read_columns(bodies)
    assert columns.fits == [True, True, True]
    assert columns.window_start == [a.window_start for a in written]
    assert columns.window_end == [a.window_end for a in written]
    assert columns.count == [a.count for a in written]
    assert columns.rate == [a.rate_per_second for a in written]
    assert columns.stats[1] == [
        60.0 + 3,
        5.0,
        15.0,
        10.0,
        15.0 + 3,
        10.0,
        14.0,
        14.5,
        15.0,
        0.01,
    ]
    # The series' bytes (the key of its shape) are the same in every window.
    again = encode(aggregate(7))
    end, tail = read_columns([again]).series_end[0], read_columns([again]).tail[0]
    assert (
        again[:end] + again[tail:]
        == bodies[0][: columns.series_end[0]] + (bodies[0][columns.tail[0] :])
    )


def test_bodies_laid_out_otherwise_do_not_fit() -> None:
    plain = encode(aggregate())
    long_host = encode(aggregate(host="h" * 70))
    many_labels = encode(aggregate(labels={f"l{i}": "v" for i in range(70)}))
    columns = read_columns([plain, long_host, plain[:-1], plain + b"\x00", many_labels, plain])
    # A long string has a two-byte length, 70 labels a two-byte count: read alone.
    assert columns.fits == [True, False, False, False, False, True]


def test_a_batch_reads_as_its_aggregates_one_by_one() -> None:
    fleet = [encode(a) for a in fleet_aggregates(3, 2)]
    odd = [
        encode(aggregate(host="h" * 70)),
        encode(aggregate(labels={f"l{i}": "v" * i for i in range(40)})),
        encode(aggregate(2, p99=math.nan)),
        encode(aggregate(2, region="eu")),
        encode(aggregate(3, kind=MetricKind.GAUGE, rate_per_second=None)),
        encode(aggregate(4, count=10**12)),
        encode(aggregate())[:-3],
        encode(aggregate()) + b"\x00",
        b"\xc3\x01" + b"\x00" * 8 + b"\xff",
        b"",
        encode(aggregate(5)),
    ]
    values = fleet[:40] + odd + fleet[40:] + odd
    full = CountingDeserializer(WindowAggregate)
    reader = AggregateReader(full, derive)
    # The second time, every series is known: all but the odd ones are read in bulk.
    read = reader.read_many(values, no_context) + reader.read_many(values, no_context)
    assert [outcome(r) for r in read] == [outcome(r) for r in read_alone(values + values)]
    # Only what no layout reads, and the schema's first value, was decoded in full.
    assert full.calls == 1 + 4 * 4
    assert all(isinstance(r, AggregateValues) for r in read[: len(fleet[:40])])


def test_a_series_read_before_is_read_in_bulk_with_its_own_shape() -> None:
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    first = reader(encode(aggregate(0)))
    later = reader.read_many([encode(aggregate(w)) for w in range(1, 4)], no_context)
    assert isinstance(first, AggregateValues)
    assert all(isinstance(r, AggregateValues) and r.shape is first.shape for r in later)
    assert [r.aggregate() for r in later] == [aggregate(w) for w in range(1, 4)]


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=70)
doubles = st.floats(allow_nan=True, allow_infinity=True)


def windowed(
    series: tuple[str, str, dict[str, str], MetricKind],
    size: int,
    start: int,
    count: int,
    stats: list[float],
    rate: float | None,
    region: str | None = None,
) -> WindowAggregate:
    """An aggregate of ``series`` (host, metric, labels, kind); ``stats`` in the schema's order."""
    host, metric, labels, kind = series
    named = dict(zip(STATS_FIELDS, stats, strict=True))
    return WindowAggregate(
        host=host,
        metric=metric,
        labels=labels,
        kind=kind,
        window_size_ms=size,
        window_start=start,
        window_end=start + size,
        count=count,
        rate_per_second=rate,
        region=region,
        **named,
    )


aggregates = st.builds(
    lambda host, metric, labels, kind, window, count, stats, rate, region: windowed(
        (host, metric, labels, kind), 60_000, T0 + window * 60_000, count, stats, rate, region
    ),
    st.sampled_from(["web-1", "db-2"]) | names,
    st.sampled_from(["node_load1", "node_cpu_seconds_total"]) | names,
    st.dictionaries(names, names, max_size=4),
    st.sampled_from(MetricKind),
    st.integers(-(10**6), 10**6),
    st.integers(0, 2**62),
    st.lists(doubles, min_size=10, max_size=10),
    st.none() | doubles,
    st.none() | st.sampled_from(["eu", "us-east-1"]) | names,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(aggregates, min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3)), max_size=30),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 200), st.integers(0, 255)), max_size=3),
)
def test_any_batch_reads_as_its_values_one_by_one(
    distinct: list[WindowAggregate],
    picks: list[tuple[int, int]],
    damage: list[tuple[int, int, int]],
) -> None:
    # Repeats of a few series in later windows, some bodies cut or with a byte changed.
    values = [encode(a) for a in distinct]
    for which, window in picks:
        a = distinct[which % len(distinct)]
        size = a.window_end - a.window_start
        later = replace(
            a, window_start=a.window_start + window * size, window_end=a.window_end + window * size
        )
        values.append(encode(later))
    for which, at, byte in damage:
        value = bytearray(values[which % len(values)])
        if byte % 5 == 0:
            value = value[: at % (len(value) + 1)]
        elif value:
            value[at % len(value)] = byte
        values.append(bytes(value))
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    # Read twice: the second time every series the values name is known.
    read = reader.read_many(values, no_context) + reader.read_many(values, no_context)
    assert [outcome(r) for r in read] == [outcome(r) for r in read_alone(values + values)]


def verdict(found: Any) -> Any:
    return None if found is None else found.error


def mostly(valid: list[Any], invalid: list[Any]) -> st.SearchStrategy[Any]:
    """One of ``valid`` nine times in ten, else one of ``invalid``."""
    return st.sampled_from([*valid, *valid, *valid] * 3 + invalid)


def some_infinite(stats: list[float]) -> list[float]:
    return [math.inf, *stats[1:]]


# Mostly valid aggregates, each field now and then breaking one rule of the contract.
judged = st.builds(
    lambda host, metric, labels, kind, size, shift, count, stats, error, rate: windowed(
        (host, metric, labels, kind), size, T0 + shift, count, [*stats, error], rate
    ),
    mostly(["web-1", "db-2"], ["web 1"]),
    mostly(["node_load1", "node_cpu_seconds_total"], ["9lives", "a-b"]),
    st.dictionaries(
        mostly(["device", "cpu", "mode"], ["instance", "le-x"]),
        mostly(["eth0", "0", "idle"], ["a\x01b"]),
        max_size=3,
    ),
    st.sampled_from(MetricKind),
    mostly([60_000, 300_000], [0]),
    mostly([0, 300_000], [1_000, -40 * 86_400_000]),
    mostly([1, 6], [0]),
    st.lists(st.floats(-10.0, 1e6), min_size=9, max_size=9)
    | st.lists(st.floats(-10.0, 1e6), min_size=9, max_size=9).map(some_infinite),
    mostly([0.0, 0.01], [1.0]),
    st.none() | mostly([0.5, 2.0], [-0.5, math.nan]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(judged, min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(0, 7), st.integers(1, 3)), max_size=12),
    st.lists(st.sampled_from(["metrics.agg.1m", "metrics.agg.5m", None]), min_size=1),
)
def test_an_aggregate_read_by_shape_is_judged_as_the_whole_record(
    distinct: list[WindowAggregate],
    picks: list[tuple[int, int]],
    topics: list[str | None],
) -> None:
    # A series' first aggregate is judged by its series' fields and its window,
    # later ones by their window: both must reach the verdict the whole record
    # gets, on any topic.
    written = list(distinct)
    for which, window in picks:
        a = distinct[which % len(distinct)]
        step = window * max(a.window_size_ms, 1)
        written.append(
            replace(a, window_start=a.window_start + step, window_end=a.window_end + step)
        )
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    read = reader.read_many([encode(a) for a in written], no_context)
    now = T0 + 3_600_000
    # At most two labels of a series' own (with __name__, instance and job: five).
    limits = ValidationLimits(max_labels_per_series=5)
    by_shape = Validator(limits, clock_ms=lambda: now)
    in_full = Validator(limits, clock_ms=lambda: now)
    for n, (a, r) in enumerate(zip(written, read, strict=True)):
        topic = topics[n % len(topics)]
        assert verdict(by_shape.check(r, topic)) == verdict(in_full.check(a, topic))

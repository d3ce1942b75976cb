"""Window aggregates read by their series' shape, without fastavro, checked against it."""

from __future__ import annotations

import math
import struct
from dataclasses import replace

import pytest

from hoststream.errors import SerializationError
from hoststream.schemas import (
    MetricKind,
    SingleObjectAvroSerializer,
    WindowAggregate,
    schema_versions,
)
from hoststream.schemas.statistics import STATISTIC_FIELDS
from hoststream.schemas.validation import Validator
from hoststream.sinks.aggregate_reader import (
    STATS_FIELDS,
    AggregateReader,
    AggregateValues,
)
from tests.support.shaped_reading import (
    T0,
    CountingDeserializer,
    aggregate,
    assert_a_negative_kind_is_refused,
    derive,
    encode_aggregate,
)

encode = encode_aggregate


def whole(read: AggregateValues | WindowAggregate) -> WindowAggregate:
    return read.aggregate() if isinstance(read, AggregateValues) else read


def test_the_statistics_read_are_the_records_in_its_order() -> None:
    # count, then the doubles as the schema lays them out, the rate last.
    assert ("count", *STATS_FIELDS[:-1], "rate_per_second") == STATISTIC_FIELDS


def test_aggregates_of_a_known_series_are_read_without_a_full_decode() -> None:
    full = CountingDeserializer(WindowAggregate)
    reader = AggregateReader(full, derive)
    aggregates = [aggregate(w) for w in range(5)]
    read = [reader(encode(a)) for a in aggregates]
    assert full.calls == 1  # the schema's first value, to check the layout against
    assert all(isinstance(r, AggregateValues) for r in read)
    assert [whole(r) for r in read] == aggregates
    assert read[3].shape is read[0].shape
    assert read[3].shape.derived == "web-1/node_network_receive_bytes_total"


def test_new_series_are_read_from_their_bytes_with_long_strings_and_many_labels() -> None:
    # Strings of 64 bytes and more have a two-byte length: read all the same.
    full = CountingDeserializer(WindowAggregate)
    reader = AggregateReader(full, derive)
    aggregates = [
        aggregate(),
        aggregate(host="h" * 70),
        aggregate(metric="node_" + "x" * 80, labels={}),
        aggregate(labels={f"l{i}": "v" * i for i in range(40)}),
        aggregate(labels={"device": "é" * 40}, kind=MetricKind.GAUGE, rate_per_second=None),
        aggregate(
            region="eu-west", window_size_ms=300_000, window_start=T0, window_end=T0 + 300_000
        ),
        aggregate(count=10**12, window_start=T0 * 1000, window_end=T0 * 1000 + 60_000),
    ]
    read = [reader(encode(a)) for a in aggregates]
    assert full.calls == 1
    assert all(isinstance(r, AggregateValues) for r in read)
    assert [whole(r) for r in read] == aggregates
    assert len({r.shape for r in read}) == len(aggregates) - 1
    assert read[-1].shape is read[0].shape  # the same series, another window


def test_the_region_and_the_window_size_tell_series_apart() -> None:
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    plain, eu = reader(encode(aggregate())), reader(encode(aggregate(region="eu")))
    five = aggregate(window_size_ms=300_000, window_start=T0, window_end=T0 + 300_000)
    assert isinstance(plain, AggregateValues)
    assert isinstance(eu, AggregateValues)
    assert eu.shape is not plain.shape
    assert eu.shape.series.region == "eu"
    assert whole(reader(encode(five))) == five


def test_a_nan_is_read_as_it_was_written_for_the_validator_to_refuse() -> None:
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    reader(encode(aggregate(0)))
    read = reader(encode(aggregate(1, p99=math.nan)))
    assert isinstance(read, AggregateValues)
    assert math.isnan(read.aggregate().p99)
    found = Validator(clock_ms=lambda: T0).check(read, "metrics.agg.1m")
    assert found is not None
    assert found.error == "NonFiniteValue"


def test_bytes_that_are_no_aggregate_raise_the_deserializers_error() -> None:
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    reader(encode(aggregate()))
    with pytest.raises(SerializationError):
        reader(b"\xc3\x01" + b"\x00" * 8 + b"\xff")
    with pytest.raises(SerializationError):
        reader(encode(aggregate())[:-3])
    with pytest.raises(SerializationError):
        reader(encode(aggregate()) + b"\x00")
    with pytest.raises(SerializationError):
        reader(b"")


def test_aggregates_of_an_earlier_schema_version_are_read_as_their_full_decode_says() -> None:
    full = CountingDeserializer(WindowAggregate)
    reader = AggregateReader(full, derive)
    for version in schema_versions(WindowAggregate):
        old = SingleObjectAvroSerializer(WindowAggregate, schema=version)
        written = [aggregate(w, region=None) for w in range(3)]
        read = [reader(old(a)) for a in written]
        assert [whole(r) for r in read] == [full.inner(old(a)) for a in written]


def test_a_schema_whose_values_the_layout_misreads_is_decoded_in_full() -> None:
    class Misreading(CountingDeserializer):
        """Double: decodes each aggregate with its sum changed, as a decoder of
        another layout might: the bytes then hold no such value."""

        def __call__(self, data, ctx=None):
            decoded = super().__call__(data, ctx)
            return replace(decoded, sum=decoded.sum + 1)

    full = Misreading(WindowAggregate)
    reader = AggregateReader(full, derive)
    read = [reader(encode(aggregate(w))) for w in range(3)]
    assert all(isinstance(r, WindowAggregate) for r in read)  # handed on as decoded
    assert [r.sum for r in read] == [61.0, 62.0, 63.0]
    assert full.calls == 3


def test_the_oldest_series_are_forgotten_beyond_the_limit() -> None:
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive, max_shapes=2)
    first = reader(encode(aggregate(host="a")))
    reader(encode(aggregate(host="b")))
    reader(encode(aggregate(host="c")))
    again = reader(encode(aggregate(1, host="a")))
    assert isinstance(first, AggregateValues)
    assert isinstance(again, AggregateValues)
    assert again.shape is not first.shape  # learned anew
    assert whole(again) == aggregate(1, host="a")


def test_the_validation_contract_judges_aggregates_read_by_shape_as_whole_ones() -> None:
    validator = Validator(clock_ms=lambda: T0 + 120_000)
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    first, second = reader(encode(aggregate(0))), reader(encode(aggregate(1)))
    assert validator.check(first, "metrics.agg.1m") is None
    assert validator.check(second, "metrics.agg.1m") is None
    wrong_topic = validator.check(second, "metrics.agg.5m")
    assert wrong_topic is not None
    assert wrong_topic.error == "WrongTopic"
    cases = {
        "InvalidWindow": aggregate(2, window_start=T0 + 1, window_end=T0 + 60_001),
        "NegativeCounter": aggregate(2, rate_per_second=-1.0),
        "StaleTimestamp": aggregate(-(10**6), count=6),
    }
    for error, bad in cases.items():
        read = reader(encode(bad))
        assert isinstance(read, AggregateValues)
        found = validator.check(read, "metrics.agg.1m")
        assert found is not None
        assert found == validator.check(bad, "metrics.agg.1m")
        assert found.error == error


def test_a_series_with_an_invalid_label_is_refused_by_every_aggregate() -> None:
    validator = Validator(clock_ms=lambda: T0 + 120_000)
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    reader(encode(aggregate(0)))
    bad = [reader(encode(aggregate(w, labels={"__bad": "x"}))) for w in range(2)]
    for read in bad:
        found = validator.check(read, "metrics.agg.1m")
        assert found is not None
        assert found.error == "InvalidLabelName"


def test_a_count_of_several_bytes_and_a_changing_window_are_decoded() -> None:
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    written = [aggregate(w, count=c) for w, c in enumerate((1, 63, 64, 10**6, 2**40))]
    read = [reader(encode(a)) for a in written]
    assert [r.sample_count for r in read if isinstance(r, AggregateValues)] == [
        1,
        63,
        64,
        10**6,
        2**40,
    ]
    assert [whole(r) for r in read] == written


def test_a_truncated_body_is_no_struct_error() -> None:
    # The doubles are read by struct: a body that ends among them is the
    # deserializer's error, not a struct.error escaping.
    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    data = encode(aggregate())
    reader(data)
    with pytest.raises(SerializationError):
        reader(data[: len(data) - 20])
    assert struct.calcsize("<10dB") == 81


def test_a_negative_kind_index_is_refused_learned_series_or_not() -> None:
    def with_negative_kind(window: int) -> bytes:
        raw = encode(aggregate(window))
        gauge = encode(replace(aggregate(window), kind=MetricKind.GAUGE))
        at = next(i for i, (x, y) in enumerate(zip(raw, gauge, strict=True)) if x != y)
        assert (raw[at], gauge[at]) == (2, 0)  # the counter's kind, index 1
        return raw[:at] + b"\x03" + raw[at + 1 :]

    reader = AggregateReader(CountingDeserializer(WindowAggregate), derive)
    read = assert_a_negative_kind_is_refused(
        reader, lambda window: encode(aggregate(window)), with_negative_kind
    )
    assert isinstance(read, AggregateValues)

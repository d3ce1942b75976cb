"""Metric events read by their learned shape into import lines, without a server."""

from __future__ import annotations

import gc
import json
import math
from collections import defaultdict
from dataclasses import replace

import orjson
import pytest

from hoststream.errors import InvalidRecordError, SerializationError
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import (
    AvroReader,
    MetricEvent,
    MetricKind,
    Sample,
    SingleObjectAvroSerializer,
    event_layout,
    schema_versions,
    written_layout,
)
from hoststream.schemas._varint import zigzag
from hoststream.schemas.validation import Validator
from hoststream.sinks.vm_import import (
    EventValues,
    MetricEventReader,
    check_values,
    import_body,
    import_line_prefixes,
)
from hoststream.sinks.vm_series import TimeBounds, event_lines, series_labels
from tests.support.shaped_reading import CountingDeserializer, assert_a_negative_kind_is_refused

T0 = 1_800_000_000_000
encode = SingleObjectAvroSerializer(MetricEvent)


def event(tick: int, host: str = "h1", **extra_labels: str) -> MetricEvent:
    samples = (
        Sample("node_load1", 0.5 + tick, {}),
        Sample(
            "node_cpu_seconds_total", 100.0 * tick, {"cpu": "0", "mode": "idle"}, MetricKind.COUNTER
        ),
        Sample("node_filesystem_avail_bytes", 2.0**40 + tick, {"mountpoint": "/", **extra_labels}),
    )
    return MetricEvent(
        host, "system", T0 + tick * 10_000, samples, seq=tick, host_labels={"role": "db"}
    )


def expected_lines(events: list[MetricEvent]) -> dict[str, tuple[list, list]]:
    """What the per-sample import lines say, grouped by series."""
    series: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for e in events:
        for line in event_lines(e):
            values, timestamps = series[json.dumps(line["metric"], sort_keys=True)]
            values += line["values"]
            timestamps += line["timestamps"]
    return dict(series)


def parsed(body: bytes) -> dict[str, tuple[list, list]]:
    """The body's samples by series (a series may span lines), in time order."""
    series: dict[str, list] = defaultdict(list)
    for line in body.decode().splitlines():
        entry = json.loads(line)
        key = json.dumps(entry["metric"], sort_keys=True)
        series[key] += zip(entry["timestamps"], entry["values"], strict=True)
    return {
        key: ([v for _, v in sorted(pairs)], [t for t, _ in sorted(pairs)])
        for key, pairs in series.items()
    }


def test_events_of_a_known_shape_are_read_without_a_full_decode() -> None:
    full = CountingDeserializer(MetricEvent)
    reader = MetricEventReader(full)
    events = [event(tick) for tick in range(5)]
    read = [reader(encode(e)) for e in events]
    assert full.calls == 1  # the first event teaches the shape
    assert all(isinstance(r, EventValues) for r in read)
    assert read[3].timestamp_ms == T0 + 30_000
    assert read[3].values == (3.5, 300.0, 2.0**40 + 3)
    assert read[3].host == "h1"


def test_the_import_body_has_one_line_per_series_with_every_value_of_the_batch() -> None:
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    fleet = SimulatedFleet(3, seed=9)
    events = [e for tick in range(4) for e in fleet.events(T0 + tick * 10_000)]
    body = import_body(reader(encode(e)) for e in events)
    assert parsed(body) == expected_lines(events)
    assert len(body.splitlines()) == len(expected_lines(events))


def test_shapes_of_one_series_and_batches_of_one_event_make_whole_lines() -> None:
    # The body dumps a shape's columns in one go and splits them: one column,
    # one row and a value JSON writes with an exponent must come out whole.
    def one(tick: int, host: str) -> MetricEvent:
        sample = Sample("node_load1", 1e-300 * (tick + 1) if host == "h1" else 2.5e20 * tick, {})
        return MetricEvent(host, "system", T0 + tick * 10_000, (sample,), seq=tick)

    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    events = [one(tick, host) for tick in range(3) for host in ("h1", "h2")]
    read = [reader(encode(e)) for e in events]
    assert all(isinstance(r, EventValues) for r in read[2:])
    assert parsed(import_body(read)) == expected_lines(events)
    assert parsed(import_body(read[-1:])) == expected_lines(events[-1:])


def test_a_long_host_id_and_a_growing_sequence_number_are_read_by_shape() -> None:
    # Host ids of 64 bytes and more have a length of two bytes; sequence
    # numbers past 63 take two bytes and more: the shape still applies.
    full = CountingDeserializer(MetricEvent)
    reader = MetricEventReader(full)
    host = "h" * 70
    events = [replace(event(tick, host=host), seq=tick * 1000) for tick in range(4)]
    read = [reader(encode(e)) for e in events]
    assert full.calls == 1
    assert [r.timestamp_ms for r in read] == [e.timestamp_ms for e in events]
    assert parsed(import_body(read)) == expected_lines(events)


def test_a_changed_shape_is_decoded_in_full_and_learned_again() -> None:
    full = CountingDeserializer(MetricEvent)
    reader = MetricEventReader(full)
    events = [event(0), event(1), event(2, fstype="ext4"), event(3, fstype="ext4"), event(4)]
    read = [reader(encode(e)) for e in events]
    assert full.calls == 3  # first, the new label, and back to the first layout
    assert parsed(import_body(read)) == expected_lines(events)


def test_the_region_is_part_of_the_shape_and_labels_every_series() -> None:
    full = CountingDeserializer(MetricEvent)
    reader = MetricEventReader(full)
    events = [replace(event(t), region="eu") for t in range(3)] + [event(3)]
    read = [reader(encode(e)) for e in events]
    assert full.calls == 2
    assert parsed(import_body(read)) == expected_lines(events)
    assert b'"region":"eu"' in import_body(read[:1])


def test_hosts_have_shapes_of_their_own() -> None:
    full = CountingDeserializer(MetricEvent)
    reader = MetricEventReader(full)
    read = [reader(encode(event(t, host=h))) for t in range(3) for h in ("a", "b")]
    assert full.calls == 2
    assert {r.host for r in read} == {"a", "b"}


def test_a_value_that_is_not_finite_is_found_and_named() -> None:
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    reader(encode(event(0)))
    bad = event(1)
    bad = MetricEvent(
        bad.host,
        bad.family,
        bad.timestamp_ms,
        (
            bad.samples[0],
            Sample(
                "node_cpu_seconds_total", math.nan, {"cpu": "0", "mode": "idle"}, MetricKind.COUNTER
            ),
            bad.samples[2],
        ),
        seq=1,
        host_labels=bad.host_labels,
    )
    handed_on = reader(encode(bad))
    # Not read by its shape: decoded in full, for the validation contract
    # (which the sink's consumer applies first) to name what is wrong.
    assert isinstance(handed_on, MetricEvent)
    assert math.isnan(handed_on.samples[1].value)
    found = Validator(clock_ms=lambda: T0).check(handed_on, "metrics.system")
    assert found is not None
    assert found.error == "NonFiniteValue"
    assert "node_cpu_seconds_total" in found.reason


def test_the_sinks_own_check_is_victoriametrics_retention() -> None:
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    reader(encode(event(0)))
    bounds = TimeBounds(T0, 3600, 600)
    check_values(reader(encode(event(2))), bounds)
    with pytest.raises(InvalidRecordError, match="outside"):
        check_values(reader(encode(event(2))), TimeBounds(T0 + 86_400_000, 3600, 600))


def test_a_first_event_with_an_invalid_name_is_handed_on_whole_and_not_learned() -> None:
    full = CountingDeserializer(MetricEvent)
    reader = MetricEventReader(full)
    bad = MetricEvent("h1", "system", T0, (Sample("bad name", 1.0),), seq=0)
    assert reader(encode(bad)) == bad  # for the validator and the sink's check to refuse
    assert reader(encode(bad)) == bad
    assert full.calls == 2


def test_bytes_that_are_no_event_raise_the_deserializers_error() -> None:
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    with pytest.raises(SerializationError):
        reader(b"\xc3\x01" + b"\x00" * 8 + b"\xff")
    with pytest.raises(SerializationError):
        reader(b"")


def test_the_validation_contract_judges_events_read_by_shape_as_whole_events() -> None:
    validator = Validator(clock_ms=lambda: T0 + 60_000)
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    first, second = reader(encode(event(0))), reader(encode(event(1)))
    assert isinstance(second, EventValues)
    assert second.event() == replace(event(1), seq=0)  # the sequence number is not kept
    assert validator.check(first, "metrics.system") is None
    assert validator.check(second, "metrics.system") is None
    wrong_topic = validator.check(second, "metrics.cpu")
    assert wrong_topic is not None
    assert wrong_topic.error == "WrongTopic"
    nan = event(2)
    nan = replace(nan, samples=(replace(nan.samples[0], value=math.nan), *nan.samples[1:]))
    found = validator.check(reader(encode(nan)), "metrics.system")
    assert found is not None
    assert "node_load1" in found.reason


def test_the_validator_forgets_what_it_knew_of_a_shape_once_the_shape_is_gone() -> None:
    validator = Validator(clock_ms=lambda: T0 + 60_000)
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    reader(encode(event(0)))
    known = reader(encode(event(1)))
    assert isinstance(known, EventValues)
    assert validator.check(known, "metrics.system") is None
    remembered = validator._good_shapes  # what a sink's validator holds per shape
    assert remembered.get(known.shape) == {"metrics.system"}
    assert len(remembered._by_id) == 1
    del known
    reader._shapes.clear()  # the reader forgets its oldest shapes the same way
    gc.collect()
    assert not remembered._by_id


def test_changed_host_labels_are_a_changed_shape_and_label_the_series_they_came_with() -> None:
    full = CountingDeserializer(MetricEvent)
    reader = MetricEventReader(full)
    events = [event(0), event(1)]
    events += [replace(event(t), host_labels={"role": "web"}) for t in (2, 3)]
    events += [event(4)]
    read = [reader(encode(e)) for e in events]
    assert full.calls == 3  # first, the new host labels, and back to the first
    assert all(isinstance(r, EventValues) for r in read)
    assert parsed(import_body(read)) == expected_lines(events)


def test_events_of_an_earlier_schema_version_are_read_as_their_full_decode_says() -> None:
    [v1] = [v for v in schema_versions(MetricEvent) if v.source.endswith(".v1.avsc")]
    old = SingleObjectAvroSerializer(MetricEvent, schema=v1)
    full = CountingDeserializer(MetricEvent)
    reader = MetricEventReader(full)
    events = [event(tick) for tick in range(4)]
    read = [reader(old(e)) for e in events]
    # Whether read by a learned shape or in full, each is what decoding it in full gives.
    assert [r.event() if isinstance(r, EventValues) else r for r in read] == [
        replace(full.inner(old(e)), seq=0) for e in events
    ]
    assert parsed(import_body(read)) == expected_lines(events)


def test_bytes_whose_layout_puts_no_value_where_the_decode_has_it_are_not_learned() -> None:
    class Misreading(CountingDeserializer):
        """Double: decodes each event with its first value changed, as a decoder
        of another layout might: the bytes then hold no such value."""

        def __call__(self, data, ctx=None):
            decoded = super().__call__(data, ctx)
            first = replace(decoded.samples[0], value=decoded.samples[0].value + 1)
            return replace(decoded, samples=(first, *decoded.samples[1:]))

    full = Misreading(MetricEvent)
    reader = MetricEventReader(full)
    read = [reader(encode(event(tick))) for tick in range(3)]
    assert all(isinstance(r, MetricEvent) for r in read)  # handed on whole, as decoded
    assert full.calls == 3  # never learned


def with_value(e: MetricEvent, index: int, value: float) -> MetricEvent:
    samples = list(e.samples)
    samples[index] = replace(samples[index], value=value)
    return replace(e, samples=tuple(samples))


def read_many(reader: MetricEventReader, events: list[MetricEvent | bytes]) -> list:
    values = [e if isinstance(e, bytes) else encode(e) for e in events]
    return reader.read_many(values, lambda i: None)


def test_a_batch_read_at_once_says_what_reading_each_event_alone_says() -> None:
    fleet = SimulatedFleet(3, seed=5)
    events = [e for tick in range(4) for e in fleet.events(T0 + tick * 10_000)]
    alone, together = (
        MetricEventReader(CountingDeserializer(MetricEvent)),
        MetricEventReader(full := CountingDeserializer(MetricEvent)),
    )
    one_by_one = [alone(encode(e)) for e in events]
    first, rest = read_many(together, events[:15]), read_many(together, events[15:])
    assert [type(r) for r in first + rest] == [type(r) for r in one_by_one]
    assert parsed(import_body(first + rest)) == parsed(import_body(one_by_one))
    assert parsed(import_body(first + rest)) == expected_lines(events)
    assert full.calls == len({(e.host, e.family) for e in events})  # each one's first event


def test_a_batch_hands_bad_bytes_back_as_their_error_and_reads_the_rest() -> None:
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    reader(encode(event(0)))
    read = read_many(reader, [event(1), b"\x00\x00\x00\x00\x07garbage", b"", event(2)])
    assert isinstance(read[0], EventValues)
    assert read[0].values == (1.5, 100.0, 2.0**40 + 1)
    assert isinstance(read[1], SerializationError)
    assert isinstance(read[2], SerializationError)
    assert isinstance(read[3], EventValues)
    assert read[3].timestamp_ms == T0 + 20_000


def test_a_changed_label_of_the_same_length_in_a_batch_is_not_read_by_the_old_shape() -> None:
    full = CountingDeserializer(MetricEvent)
    reader = MetricEventReader(full)
    reader(encode(event(0, mountpoint_kind="a")))
    changed = event(1, mountpoint_kind="b")  # same size, other bytes
    read = read_many(reader, [event(1, mountpoint_kind="a"), changed])
    assert full.calls == 2
    assert parsed(import_body(read)) == expected_lines([event(1, mountpoint_kind="a"), changed])


@pytest.mark.parametrize("batch", [False, True])
def test_a_negative_counter_of_a_known_shape_is_handed_on_whole_for_the_contract(
    batch: bool,
) -> None:
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    reader(encode(event(0)))
    bad = with_value(event(1), 1, -5.0)
    read = read_many(reader, [bad])[0] if batch else reader(encode(bad))
    assert read == replace(bad, seq=1)
    found = Validator(clock_ms=lambda: T0).check(read, "metrics.system")
    assert found is not None
    assert found.error == "NegativeCounter"


def test_a_value_that_is_not_finite_in_a_batch_is_found_and_named() -> None:
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    reader(encode(event(0)))
    [read] = read_many(reader, [with_value(event(1), 0, math.inf)])
    found = Validator(clock_ms=lambda: T0).check(read, "metrics.system")
    assert found is not None
    assert found.error == "NonFiniteValue"


def _samples_start(data: bytes) -> int:
    """Where the host labels of a single-object encoded event start."""
    reader = AvroReader(data, 10)
    reader.string()  # host
    reader.string()  # family
    reader.long()  # instant
    reader.long()  # interval
    reader.long()  # sequence number
    return reader.pos


def test_a_layout_derived_from_the_event_is_the_one_read_from_its_bytes() -> None:
    e = replace(event(1), region="eu-1")
    data = encode(e)
    start = _samples_start(data)
    derived = written_layout(data, start, e)
    assert derived is not None
    read = event_layout(data, start)
    assert derived.chunks == read.chunks
    assert derived.size == read.size
    assert derived.unpack(data, start) == read.unpack(data, start)


def test_bytes_another_writer_laid_out_otherwise_are_read_varint_by_varint() -> None:
    e = event(1)
    data = encode(e)
    start = _samples_start(data)
    # The same samples as one array block that states its size in bytes, as
    # Avro allows and fastavro never writes: the values sit elsewhere.
    head = AvroReader(data, start)
    head.skip_map()  # host labels
    count_at = head.pos
    head.long()  # the sample count
    items_end = len(data) - 2  # the array's end marker and the null region follow
    items = data[head.pos : items_end]
    blocked = (
        data[:count_at] + zigzag(-len(e.samples)) + zigzag(len(items)) + items + data[items_end:]
    )
    assert written_layout(blocked, start, e) is None
    layout = event_layout(blocked, start)
    assert layout.unpack(blocked, start)[1::2] == tuple(s.value for s in e.samples)
    # The reader learns such bytes all the same, from their own layout.
    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    learned = reader(blocked)
    assert isinstance(learned, EventValues)
    assert learned.values == tuple(s.value for s in e.samples)


def test_an_event_whose_values_are_not_in_the_bytes_derives_no_layout() -> None:
    data = encode(event(1))
    assert written_layout(data, _samples_start(data), event(2)) is None


@pytest.mark.parametrize("region", [None, "eu-1"])
def test_each_samples_line_prefix_carries_the_labels_series_labels_gives_it(
    region: str | None,
) -> None:
    samples = (
        Sample("node_load1", 1.0, {}),
        Sample("node_network_up", 1.0, {"device": "eth0", "role": "edge", "job": "theirs"}),
        Sample("node_disk_io_now", 0.0, {"device": "", "instance": "spoofed"}),
    )
    e = MetricEvent(
        "h1",
        "system",
        T0,
        samples,
        host_labels={"role": "db", "region": "from-labels", "rack": ""},
        region=region,
    )
    expected = tuple(
        orjson.dumps(
            {
                "metric": {
                    "__name__": s.name,
                    **series_labels(e.host, e.region, e.host_labels, s.labels),
                }
            }
        )[:-1]
        + b',"values":'
        for s in samples
    )
    assert import_line_prefixes(e) == expected


def test_a_negative_kind_index_is_refused_learned_shape_or_not() -> None:
    def with_negative_kind(tick: int) -> bytes:
        raw = encode(event(tick))
        at = raw.index(b"node_cpu_seconds_total") + len(b"node_cpu_seconds_total")
        assert raw[at] == 2  # the counter's kind, index 1
        return raw[:at] + b"\x03" + raw[at + 1 :]

    reader = MetricEventReader(CountingDeserializer(MetricEvent))
    read = assert_a_negative_kind_is_refused(
        reader, lambda tick: encode(event(tick)), with_negative_kind
    )
    assert isinstance(read, EventValues)

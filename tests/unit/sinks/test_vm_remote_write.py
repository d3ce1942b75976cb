"""Events and aggregates read by shape into a remote-write request say what their lines say."""

from __future__ import annotations

from dataclasses import replace

import cramjam
import pytest

from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import MetricEvent, MetricKind, Sample, SingleObjectAvroSerializer
from hoststream.sinks.vm_import import EventValues, MetricEventReader
from hoststream.sinks.vm_remote_write import aggregate_heads, event_template, write_request
from hoststream.sinks.vm_series import aggregate_lines, event_lines
from tests.support.remote_write import by_series, decoded
from tests.support.shaped_reading import CountingDeserializer, fleet_aggregates, read_by_shape

T0 = 1_800_000_000_000
encode = SingleObjectAvroSerializer(MetricEvent)


def read(events: list[MetricEvent]) -> list[EventValues]:
    reader = MetricEventReader(CountingDeserializer(MetricEvent), derive=event_template)
    out = [reader(encode(e)) for e in events]
    assert all(isinstance(r, EventValues) for r in out)
    return out  # type: ignore[return-value]


def lines_of(events: list[MetricEvent]) -> list[dict]:
    return [line for e in events for line in event_lines(e)]


def fleet_events(hosts: int, ticks: int, start_ms: int = T0) -> list[MetricEvent]:
    fleet = SimulatedFleet(hosts, seed=3)
    return [e for tick in range(ticks) for e in fleet.events(start_ms + tick * 10_000)]


def test_events_alone_of_their_shape_are_one_series_each_with_the_import_lines_labels() -> None:
    events = fleet_events(3, ticks=1)
    lines = decoded(write_request(read(events)))
    # Series for series, labels in the same order (__name__ first), one sample each.
    assert lines == lines_of(events)


def test_several_events_of_a_shape_make_one_series_with_all_their_samples() -> None:
    events = fleet_events(3, ticks=4)
    lines = decoded(write_request(read(events)))
    series_per_tick = len(lines_of(fleet_events(3, ticks=1)))
    assert len(lines) == series_per_tick  # one TimeSeries per series, not per event
    assert all(len(line["values"]) == 4 for line in lines)
    assert by_series(lines) == by_series(lines_of(events))


def test_a_batch_mixing_lone_and_repeated_shapes_says_the_same() -> None:
    events = fleet_events(4, ticks=3)
    extra = fleet_events(2, ticks=1, start_ms=T0 + 30_000)
    batch = read(events) + read(extra)  # a second reader: shapes of their own, alone
    lines = decoded(write_request(batch))
    assert by_series(lines) == by_series(lines_of(events + extra))


@pytest.mark.parametrize("instant", [0, 1_000, 2**35 - 1, 2**42, -5_000])
def test_instants_whose_varint_is_not_six_bytes_are_written_one_by_one(instant: int) -> None:
    events = [
        MetricEvent("h1", "system", instant + i, (Sample("node_load1", 0.5 + i),), seq=i)
        for i in range(3)
    ]
    alone = decoded(write_request(read(events[:1])))
    assert alone == lines_of(events[:1])
    together = decoded(write_request(read(events)))
    assert by_series(together) == by_series(lines_of(events))


def test_an_instant_out_of_range_among_others_leaves_every_sample_in_place() -> None:
    events = fleet_events(2, ticks=2)
    odd = replace(events[0], timestamp_ms=1_000)
    batch = read(events) + read([odd])
    assert by_series(decoded(write_request(batch))) == by_series(lines_of([*events, odd]))


def test_values_keep_every_bit() -> None:
    values = (0.1, -0.0, 2.0**60 + 1, 5e-324, 1.7976931348623157e308)
    event = MetricEvent(
        "h1",
        "system",
        T0,
        tuple(Sample(f"node_x{i}", v) for i, v in enumerate(values)),
        host_labels={"role": "db", "zone": "é"},
    )
    [line_values] = [[line["values"][0] for line in decoded(write_request(read([event])))]]
    assert [v.hex() for v in line_values] == [v.hex() for v in values]


def test_events_without_samples_write_nothing() -> None:
    empty = MetricEvent("h1", "system", T0, ())
    assert write_request(read([empty])) == b""


def test_aggregates_read_by_shape_say_what_aggregate_lines_say() -> None:
    aggregates = fleet_aggregates(3, windows=6)
    assert {a.kind for a in aggregates} == {MetricKind.GAUGE, MetricKind.COUNTER}
    lines = decoded(write_request(read_by_shape(aggregates, aggregate_heads)))
    assert lines == [line for a in aggregates for line in aggregate_lines(a)]


def test_an_aggregate_whose_window_ends_out_of_range_is_written_from_its_record() -> None:
    [one] = fleet_aggregates(1, windows=1)[:1]
    odd = replace(one, window_start=0, window_end=one.window_size_ms)
    lines = decoded(write_request(read_by_shape([odd], aggregate_heads)))
    assert lines == aggregate_lines(odd)


def test_records_decoded_in_full_are_written_from_their_lines() -> None:
    [event] = fleet_events(1, ticks=1)[:1]
    [aggregate] = fleet_aggregates(1, windows=1)[:1]
    lines = decoded(write_request([event, aggregate]))
    assert lines == event_lines(event) + aggregate_lines(aggregate)


def test_the_request_survives_snappy_as_victoriametrics_reads_it() -> None:
    events = fleet_events(2, ticks=2)
    body = write_request(read(events))
    assert bytes(cramjam.snappy.decompress_raw(cramjam.snappy.compress_raw(body))) == body


def test_labels_come_name_first_then_sorted_as_prometheus_sends_them() -> None:
    events = fleet_events(2, ticks=1)
    aggregates = fleet_aggregates(1, windows=1)
    lines = decoded(write_request(read(events))) + decoded(
        write_request(read_by_shape(aggregates, aggregate_heads))
    )
    for line in lines:
        names = list(line["metric"])
        assert names[0] == "__name__"
        assert names[1:] == sorted(names[1:])

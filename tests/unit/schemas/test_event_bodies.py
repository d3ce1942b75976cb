"""Metric event bodies written by learned layout are byte for byte fastavro's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import MetricEvent, MetricKind, Sample, SingleObjectAvroSerializer
from hoststream.schemas._codec import encode
from hoststream.schemas._event_writer import fixed_parts
from hoststream.schemas._layout import MetricEventBodies, bodies_for, zigzag
from hoststream.schemas._loader import schema_for, schema_versions

T0 = 1_800_000_000_000
SCHEMA = schema_for(MetricEvent)


def fastavro(event: MetricEvent) -> bytes:
    return encode(b"", SCHEMA, event, None)


def test_zigzag_varints_match_avro() -> None:
    assert [zigzag(n) for n in (0, -1, 1, -64, 64)] == [
        b"\x00",
        b"\x01",
        b"\x02",
        b"\x7f",
        b"\x80\x01",
    ]
    assert zigzag(T0) == fastavro(MetricEvent("", "", T0, ()))[2:8]


def test_a_simulated_fleet_encodes_to_the_same_bytes_tick_after_tick() -> None:
    bodies = MetricEventBodies(SCHEMA)
    fleet = SimulatedFleet(20, seed=4)
    for tick in range(6):
        for event in fleet.events(T0 + tick * 10_000):
            assert bodies(event, None) == fastavro(event)


def test_changed_series_host_labels_and_values_of_any_size_still_encode_exactly() -> None:
    bodies = MetricEventBodies(SCHEMA)

    def event(seq: int, *samples: Sample, **host_labels: str) -> MetricEvent:
        return MetricEvent("h", "disk", T0 + seq, samples, seq=seq, host_labels=host_labels)

    load = Sample("node_load1", 0.25)
    disk = Sample("node_disk_read_bytes_total", 1e12, {"device": "sda"}, MetricKind.COUNTER)
    events = [
        event(0, load, disk),
        event(1, load, disk),
        event(2, load, Sample("node_disk_read_bytes_total", 7.0, {"device": "sdb"})),
        event(3, load, disk, role="db"),
        event(4, load),
        event(5),
        event(2**40, Sample("node_load1", -0.0), disk),
        event(2**40 + 1, Sample("node_load1", 3), disk),
    ]
    events += [replace(events[1], region="eu-west-1"), replace(events[1], region="us-east-1")]
    events += [replace(events[1], seq=9), replace(events[1], region=None)]
    for e in events:
        assert bodies(e, None) == fastavro(e)


def test_only_the_current_metric_event_schema_is_written_by_layout() -> None:
    assert isinstance(bodies_for(MetricEvent, SCHEMA), MetricEventBodies)
    older = [s for s in schema_versions(MetricEvent) if s.canonical_form != SCHEMA.canonical_form]
    for schema in older:
        assert bodies_for(MetricEvent, schema) is None
    assert bodies_for(type("Other", (), {}), SCHEMA) is None
    serializer = SingleObjectAvroSerializer(MetricEvent)
    event = next(iter(SimulatedFleet(1, seed=2).events(T0)))
    assert serializer(event) == serializer(event)  # learned, then written by layout
    assert serializer(event)[10:] == fastavro(event)


def test_shapes_written_straight_from_the_event_are_fastavros_bytes() -> None:
    bodies = MetricEventBodies(SCHEMA)
    many = {f"l{i}": "é" * i for i in range(70)}  # a block count of two varint bytes
    samples = tuple(
        Sample(f"node_x{i}", float(i), {"device": "nvme0n1", "ünï": "ς" * i}, MetricKind(kind))
        for i, kind in zip(range(80), ["GAUGE", "COUNTER"] * 40, strict=False)
    )
    events = [
        MetricEvent("h-é", "memory", T0, samples, host_labels=many, region="eu-wést-1"),
        MetricEvent("h2", "memory", T0, samples[:1], seq=2**33, host_labels={"a": ""}),
        MetricEvent("h3", "memory", T0, (), region=""),
        *SimulatedFleet(12, seed=9, region="eu-west-1").events(T0),
    ]
    for event in events:
        assert bodies(event, None) == fastavro(event)
        assert bodies(replace(event, seq=event.seq + 1), None) == fastavro(
            replace(event, seq=event.seq + 1)
        )


def test_a_shape_written_wrongly_goes_back_to_fastavro_for_good(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from hoststream.schemas import _layout

    def wrong(event: MetricEvent) -> tuple[bytes, tuple[bytes, ...]]:
        head, chunks = fixed_parts(event)
        return head, (b"\x04" + chunks[0][1:], *chunks[1:])

    monkeypatch.setattr(_layout, "fixed_parts", wrong)
    bodies = MetricEventBodies(SCHEMA)
    events = list(SimulatedFleet(3, seed=2).events(T0))

    assert [bodies(e, None) for e in events] == [fastavro(e) for e in events]
    assert "differs from fastavro's encoding" in caplog.text

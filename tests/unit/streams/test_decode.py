"""Columnar decoding gives exactly what the Avro deserializer gives."""

from __future__ import annotations

import pytest

from hoststream.config import Settings
from hoststream.errors import SerializationError
from hoststream.schemas import MetricEvent, MetricKind, Sample, WindowAggregate, codec_for
from hoststream.streams.decode import EventDecoder

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


def test_a_learnt_layout_decodes_later_events_exactly_as_the_deserializer() -> None:
    decode = EventDecoder(EVENTS.deserializer)
    first = decode(EVENTS.serializer(cpu_event(T0, 1.5, {"region": "eu"})), "metrics.cpu")
    assert first.template is not None
    later = cpu_event(T0 + 10_000, -2.25e300, {"region": "eu"})
    got = decode(EVENTS.serializer(later), "metrics.cpu")
    assert got.template == first.template  # read through the layout, not the deserializer
    assert (got.host, got.family, got.timestamp_ms, got.series, got.values.tolist()) == as_columns(
        later
    )
    assert got.host_labels == {"region": "eu"}
    assert got.layout == first.layout


def test_a_new_layout_is_learnt_and_host_labels_change_the_layout_id() -> None:
    decode = EventDecoder(EVENTS.deserializer)
    two = decode(EVENTS.serializer(cpu_event(T0, 1.0)), "metrics.cpu")
    three = decode(EVENTS.serializer(cpu_event(T0, 1.0, cpus=3)), "metrics.cpu")
    assert three.template != two.template
    assert len(three.series) == 12
    labelled = decode(EVENTS.serializer(cpu_event(T0, 1.0, {"role": "db"})), "metrics.cpu")
    assert labelled.template == two.template
    assert labelled.layout != two.layout
    assert labelled.host_labels == {"role": "db"}


def test_bytes_that_only_resemble_a_layout_go_to_the_deserializer() -> None:
    decode = EventDecoder(EVENTS.deserializer)
    raw = EVENTS.serializer(cpu_event(T0, 1.0))
    decode(raw, "metrics.cpu")
    renamed = raw.replace(b"node_cpu_seconds_total", b"node_cpu_seconds_totaX")
    got = decode(renamed, "metrics.cpu")
    assert got.series[0][0][0] == "node_cpu_seconds_totaX"


def test_events_that_carry_a_region_are_read_through_the_layout_too() -> None:
    import dataclasses

    decode = EventDecoder(EVENTS.deserializer)
    first = decode(
        EVENTS.serializer(dataclasses.replace(cpu_event(T0, 1.5), region="region-a")), "metrics.cpu"
    )
    assert first.template is not None
    later = dataclasses.replace(cpu_event(T0 + 10_000, 3.0), region="region-a")
    got = decode(EVENTS.serializer(later), "metrics.cpu")
    assert got.template == first.template
    assert got.values.tolist() == as_columns(later)[4]
    # Another region's bytes differ from the template's: it is not taken for this layout.
    other = dataclasses.replace(cpu_event(T0 + 20_000, 4.0), region="region-b")
    assert decode(EVENTS.serializer(other), "metrics.cpu").template != first.template


def test_a_host_whose_labels_change_is_decoded_with_its_new_labels() -> None:
    # The decoder skips a host's labels by their last bytes; other labels
    # (a prefix of the old ones, or more of them) are read afresh.
    decode = EventDecoder(EVENTS.deserializer)
    for labels in ({"region": "eu"}, {"region": "eu"}, {"region": "us"}, {"region": "e"}, {}):
        event = cpu_event(T0, 1.0, labels)
        got = decode(EVENTS.serializer(event), "metrics.cpu")
        assert got.host_labels == labels
        assert got.values.tolist() == as_columns(event)[4]
    both = {"region": "eu", "zone": "a"}
    assert decode(EVENTS.serializer(cpu_event(T0, 2.0, both)), "metrics.cpu").host_labels == both


def test_a_host_name_that_is_not_utf8_is_an_error_of_the_message_not_of_the_decoder() -> None:
    # The host is outside the bytes a layout fixes: a message of a known
    # layout whose host is no UTF-8 once escaped as a UnicodeDecodeError,
    # which the processor does not dead-letter.
    decode = EventDecoder(EVENTS.deserializer)
    raw = EVENTS.serializer(cpu_event(T0, 1.0))
    decode(raw, "metrics.cpu")
    broken = raw.replace(b"web-1", b"\xffeb-1")
    with pytest.raises(SerializationError):
        decode(broken, "metrics.cpu")


def test_one_odd_message_does_not_leave_its_writer_schema_to_the_deserializer() -> None:
    # A sample kind's enum index flipped from 1 to -2: the layout reader refuses
    # it, and so does the deserializer (an Avro library could read it as the
    # symbol second from the end). Later messages are still read by layout.
    decode = EventDecoder(EVENTS.deserializer)
    first = decode(EVENTS.serializer(cpu_event(T0, 1.0)), "metrics.cpu")
    assert first.template is not None
    raw = EVENTS.serializer(cpu_event(T0 + 10_000, 2.0, {"role": "db"}))
    at = raw.index(b"node_cpu_seconds_total") + len(b"node_cpu_seconds_total")
    assert raw[at] == 2  # the first sample's kind: COUNTER, index 1
    odd = raw[:at] + b"\x03" + raw[at + 1 :]
    with pytest.raises(SerializationError, match="enum index -2"):
        decode(odd, "metrics.cpu")
    later = decode(EVENTS.serializer(cpu_event(T0 + 20_000, 3.0)), "metrics.cpu")
    assert later.template == first.template

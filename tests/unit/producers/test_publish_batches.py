"""Events given in batches are sent as the same messages as event by event.

Kafka is replaced by a recording test double of confluent-kafka's Producer; the
serializers are the real ones, in both wire formats (the Confluent one with a
registry double that gives schema ids).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.producers.publisher import EventPublisher
from hoststream.producers.simulation import FleetBatches, FleetValues, SimulatedFleet
from hoststream.schemas import (
    EventBatch,
    MetricEvent,
    RecordSerializer,
    RegistryAvroSerializer,
    serializer_for,
)
from hoststream.schemas.records import EventValues
from tests.support.doubles.producer import RecordingProducer, recording_publisher

T0 = 1_767_225_600_000
INTERVAL = 10_000


class SchemaIds:
    """Test double of confluent-kafka's registry client: an id per subject, in order of asking."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def register_schema(self, subject: str, _schema: object) -> int:
        return self.ids.setdefault(subject, 100 + len(self.ids))


def serializer(wire_format: str) -> RecordSerializer[MetricEvent]:
    if wire_format == "single-object":
        return serializer_for(Settings(schema_registry_url=None), MetricEvent)
    return RegistryAvroSerializer(SchemaIds(), MetricEvent)  # type: ignore[arg-type]


def publisher(wire_format: str) -> tuple[EventPublisher, RecordingProducer, CollectorRegistry]:
    return recording_publisher(RecordingProducer(), serializer(wire_format), event_timestamps=False)


def messages(producer: RecordingProducer) -> list[tuple[str, bytes, bytes, int]]:
    return [(m["topic"], m["key"], m["value"], m["timestamp"]) for m in producer.produced]


@pytest.mark.parametrize("wire_format", ["single-object", "confluent"])
def test_batches_send_the_messages_of_their_events(wire_format: str) -> None:
    by_batches, batches_producer, _ = publisher(wire_format)
    by_values, values_producer, _ = publisher(wire_format)
    batches = FleetBatches(SimulatedFleet(7, seed=3), hosts_per_batch=3)
    values = FleetValues(SimulatedFleet(7, seed=3))
    # Sequence numbers cross 63 and 64 (a varint grows a byte), the instant
    # jumps (its varint too), and the interval changes (new templates).
    stamps = [T0 + k * INTERVAL for k in range(70)] + [10_000, 10_000 + INTERVAL]

    for ts in stamps:
        for batch in batches.events(ts, INTERVAL):
            by_batches.publish_batch(batch)
        for event in values.events(ts, INTERVAL):
            by_values.publish_values(event)
    for batch in batches.events(T0 + 100 * INTERVAL, 60_000):
        by_batches.publish_batch(batch)
    for event in values.events(T0 + 100 * INTERVAL, 60_000):
        by_values.publish_values(event)

    assert messages(batches_producer) == messages(values_producer)
    assert len(messages(values_producer)) == 7 * 5 * (len(stamps) + 1)
    # Past the first ticks the batches took their own path: one plan per batch.
    assert len(by_batches._batches) >= 3


def test_a_value_that_breaks_a_rule_sends_its_batch_event_by_event() -> None:
    by_batches, batches_producer, batches_registry = publisher("single-object")
    by_values, values_producer, values_registry = publisher("single-object")
    fleet = SimulatedFleet(2, seed=1, families=("cpu", "system"))
    twin = SimulatedFleet(2, seed=1, families=("cpu", "system"))
    for tick in range(4):
        ts = T0 + tick * INTERVAL
        for batch in fleet.event_batches(ts, INTERVAL):
            values = batch.values.copy()
            if tick == 3:
                values[0] = math.nan  # a cpu counter
                values[batch.ends[0]] = -1.0  # system: node_load1 is a gauge, fine
                values[batch.ends[0] + 4] = -5.0  # system: context switches, a counter
            sent = EventBatch(batch.templates, ts, batch.seqs, values, batch.ends)
            assert by_batches.publish_batch(sent)[1] == 0
        for event in twin.event_values(ts, INTERVAL):
            changed = list(event.values)
            if tick == 3 and event.template.host.endswith("0"):
                if event.template.family == "cpu":
                    changed[0] = math.nan
                else:
                    changed[0], changed[4] = -1.0, -5.0
            by_values.publish_values(EventValues(event.template, ts, event.seq, changed))

    assert messages(batches_producer) == messages(values_producer)
    assert by_batches.invalid_samples == by_values.invalid_samples == 2
    for registry in (batches_registry, values_registry):
        for error, family in (("NonFiniteValue", "cpu"), ("NegativeCounter", "system")):
            assert (
                registry.get_sample_value(
                    "hoststream_producer_invalid_samples_total",
                    {"family": family, "error": error},
                )
                == 1
            )


def test_a_batch_counts_what_it_queued_and_its_deliveries() -> None:
    pub, producer, registry = publisher("single-object")
    fleet = SimulatedFleet(3, seed=2)
    counts = [
        pub.publish_batch(batch)
        for tick in range(3)
        for batch in fleet.event_batches(T0 + tick * INTERVAL, INTERVAL)
    ]

    for message in producer.produced:
        message["on_delivery"](None, None)

    samples = sum(c[2] for c in counts)
    assert sum(c[0] for c in counts) == len(producer.produced) == 3 * 3 * 5
    assert pub.acknowledged == 45
    assert pub.acknowledged_samples == samples
    events = registry.get_sample_value("hoststream_producer_events_total", {"family": "cpu"})
    assert events == 9


def test_a_batch_is_its_events() -> None:
    fleet, twin = SimulatedFleet(5, seed=8), SimulatedFleet(5, seed=8)
    for ts in (T0, T0 + INTERVAL):
        batches = list(fleet.event_batches(ts, INTERVAL, hosts_per_batch=2))

        assert [len(batch) for batch in batches] == [10, 10, 5]
        assert all(isinstance(batch.values, np.ndarray) for batch in batches)
        from_batches = [values.event() for batch in batches for values in batch.event_values()]
        assert from_batches == list(twin.events(ts, INTERVAL))


def test_batches_kept_from_tick_to_tick_follow_sequence_numbers_and_interval_changes() -> None:
    fleet, twin = SimulatedFleet(4, seed=6), SimulatedFleet(4, seed=6)
    steps = [(T0, INTERVAL, "batches"), (T0 + INTERVAL, INTERVAL, "events")]
    steps += [(T0 + 2 * INTERVAL, INTERVAL, "batches"), (T0 + 3 * INTERVAL, 5_000, "batches")]
    steps += [(T0 + 4 * INTERVAL, 5_000, "batches"), (T0 + 5 * INTERVAL, INTERVAL, "batches")]
    for ts, interval, how in steps:
        if how == "events":
            got = list(fleet.events(ts, interval))
        else:
            batches = fleet.event_batches(ts, interval, hosts_per_batch=3)
            got = [values.event() for batch in batches for values in batch.event_values()]

        assert got == list(twin.events(ts, interval))
        assert {event.interval_ms for event in got} == {interval}

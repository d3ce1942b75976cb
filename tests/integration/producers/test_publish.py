"""The producer against the real broker and registry."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.config import Settings
from hoststream.producers.agent import HostEvents, create_metric_topics
from hoststream.producers.collectors import RecordedSource, default_collectors
from hoststream.producers.publisher import EventPublisher
from hoststream.schemas import MetricEvent, codec_for
from hoststream.schemas.records import FAMILIES
from hoststream.topics import metric_topic
from tests.support.kafka import drain
from tests.support.paths import DATA

SNAPSHOT = DATA / "debian12_vm_2cpu.json"


def test_each_family_round_trips_exactly(services: Settings, unique: str) -> None:
    settings = services.model_copy(update={"topic_prefix": f"{unique}."})
    collectors = default_collectors(RecordedSource.from_file(SNAPSHOT))
    expected = {c.family: c.collect() for c in collectors}
    # Stamped with the read time; the clock is fixed so the stamp is known.
    read_at_ms = int(time.time()) * 1000
    source = HostEvents(
        collectors, "host-a", {"region": "eu-west"}, clock=lambda: read_at_ms / 1000
    )
    create_metric_topics(settings, source.families)
    publisher = EventPublisher(settings, codec_for(settings, MetricEvent).serializer)
    for event in source.events(1_700_000_010_000, 10_000):
        assert publisher.publish(event)
    assert publisher.flush(30) == 0

    topics = [metric_topic(settings, family) for family in FAMILIES]
    messages = drain(settings, topics, expected=len(FAMILIES))
    assert sorted(m.topic() for m in messages) == sorted(topics)

    # An independent Confluent decoder, not hoststream's own codec.
    decode = AvroDeserializer(
        SchemaRegistryClient({"url": services.schema_registry_url, "timeout": 10})
    )
    for message in messages:
        assert message.key() == b"host-a"
        record = decode(message.value(), SerializationContext(message.topic(), MessageField.VALUE))
        family = message.topic().removeprefix(f"{unique}.metrics.")
        assert record["family"] == family
        assert record["host"] == "host-a"
        assert record["host_labels"] == {"region": "eu-west"}
        assert record["seq"] == 0
        got = [(s["name"], s["labels"], s["kind"], s["value"]) for s in record["samples"]]
        want = [(s.name, dict(s.labels), s.kind.value, s.value) for s in expected[family]]
        assert got == want
        assert record["timestamp_ms"] == datetime.fromtimestamp(read_at_ms / 1000, UTC)
        assert message.timestamp()[1] == read_at_ms


def test_a_simulation_ahead_of_the_clock_is_stamped_when_produced(
    services: Settings, unique: str
) -> None:
    # Two hours ahead of the wall clock, as a fleet at --speedup 1000 is after
    # seven seconds: the broker refuses message timestamps that far ahead
    # (log.message.timestamp.after.max.ms, an hour by default since Kafka 4.0).
    settings = services.model_copy(update={"topic_prefix": f"{unique}."})
    collectors = default_collectors(RecordedSource.from_file(SNAPSHOT))
    ahead_ms = (int(time.time()) + 7200) * 1000
    create_metric_topics(settings, ["system"])
    system = [c for c in collectors if c.family == "system"]
    event = next(iter(HostEvents(system, "host-a", {}, clock=lambda: ahead_ms / 1000).events(0, 0)))
    serializer = codec_for(settings, MetricEvent).serializer

    refused = EventPublisher(settings, serializer)
    assert refused.publish(event)
    assert refused.flush(30) == 0
    # Not lost in silence: counted as a failure, never as acknowledged.
    assert (refused.acknowledged, refused.failed) == (0, 1)

    stamped = EventPublisher(settings, serializer, event_timestamps=False)
    before_ms = int(time.time() * 1000)
    assert stamped.publish(event)
    assert stamped.flush(30) == 0
    assert (stamped.acknowledged, stamped.failed) == (1, 0)
    (message,) = drain(settings, [metric_topic(settings, "system")], expected=1)
    assert before_ms <= message.timestamp()[1] <= int(time.time() * 1000)
    decode = codec_for(settings, MetricEvent).deserializer
    assert decode(message.value(), None).timestamp_ms == ahead_ms

"""Events given as template and values are sent as the same bytes as whole events.

Kafka is replaced by a recording test double of confluent-kafka's Producer; the
serializer is the real one (single-object encoding).
"""

from __future__ import annotations

import math
from dataclasses import replace

from prometheus_client import CollectorRegistry

from hoststream.producers.publisher import EventPublisher
from hoststream.schemas import EventValues, MetricEvent, MetricKind, Sample
from tests.support.doubles.producer import RecordingProducer, recording_publisher

T0 = 1_767_225_600_000


def publisher() -> tuple[EventPublisher, RecordingProducer, CollectorRegistry]:
    return recording_publisher(RecordingProducer())


TEMPLATE = MetricEvent(
    "web-1",
    "system",
    0,
    (
        Sample("node_load1", 0.0),
        Sample("node_intr_total", 0.0, {}, MetricKind.COUNTER),
        Sample("node_forks_total", 0.0, {}, MetricKind.COUNTER),
    ),
    host_labels={"role": "web"},
    region="eu-west-1",
)


def sent(producer: RecordingProducer) -> list[tuple[str, bytes, bytes, int]]:
    return [(m["topic"], m["key"], m["value"], m["timestamp"]) for m in producer.produced]


def test_values_are_sent_as_the_bytes_of_their_events() -> None:
    by_values, values_producer, _ = publisher()
    by_events, events_producer, _ = publisher()
    ticks = [
        EventValues(TEMPLATE, T0 + k * 10_000, k, [0.5 + k, 100.0 * k, 7.0 + k]) for k in range(4)
    ]

    for values in ticks:
        assert by_values.publish_values(values)
        assert by_events.publish(values.event())

    assert sent(values_producer) == sent(events_producer)
    assert len(sent(values_producer)) == 4


def test_a_value_that_breaks_a_rule_is_dropped_and_counted_as_publish_would() -> None:
    by_values, values_producer, values_registry = publisher()
    by_events, events_producer, events_registry = publisher()
    ticks = [
        EventValues(TEMPLATE, T0, 0, [0.5, 10.0, 1.0]),
        EventValues(TEMPLATE, T0 + 10_000, 1, [math.nan, 20.0, 2.0]),
        EventValues(TEMPLATE, T0 + 20_000, 2, [0.5, -3.0, 3.0]),
        EventValues(TEMPLATE, T0 + 30_000, 3, [0.7, 40.0, 4.0]),
    ]

    for values in ticks:
        by_values.publish_values(values)
        by_events.publish(values.event())

    assert sent(values_producer) == sent(events_producer)
    assert by_values.invalid_samples == by_events.invalid_samples == 2
    for registry in (values_registry, events_registry):
        for error in ("NonFiniteValue", "NegativeCounter"):
            assert (
                registry.get_sample_value(
                    "hoststream_producer_invalid_samples_total",
                    {"family": "system", "error": error},
                )
                == 1
            )


def test_an_invalid_template_never_takes_the_fast_path() -> None:
    pub, producer, _ = publisher()
    bad = replace(TEMPLATE, samples=(*TEMPLATE.samples, Sample("9bad name", 0.0)))

    for k in range(3):
        pub.publish_values(EventValues(bad, T0 + k * 10_000, k, [1.0, 2.0, 3.0, 4.0]))

    assert pub.invalid_samples == 3
    assert len(producer.produced) == 3


def test_deliveries_are_counted_per_family() -> None:
    pub, producer, registry = publisher()
    for k in range(3):
        pub.publish_values(EventValues(TEMPLATE, T0 + k * 10_000, k, [1.0, 2.0, 3.0]))

    for message in producer.produced:
        message["on_delivery"](None, None)

    assert registry.get_sample_value("hoststream_producer_events_total", {"family": "system"}) == 3
    assert registry.get_sample_value("hoststream_producer_samples_total", {"family": "system"}) == 9

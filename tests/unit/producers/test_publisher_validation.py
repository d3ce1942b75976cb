"""The producer validates before sending: invalid samples are counted and logged, never sent.

Kafka is replaced by a recording test double of confluent-kafka's Producer.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.producers.publisher import EventPublisher, PublisherMetrics
from hoststream.schemas import MetricEvent, MetricKind, Sample
from tests.support.doubles.producer import RecordingProducer

T0 = 1_767_225_600_000


def publisher() -> tuple[EventPublisher, RecordingProducer, CollectorRegistry]:
    registry = CollectorRegistry()
    producer = RecordingProducer()
    pub = EventPublisher(
        Settings(),
        lambda event, _ctx: repr(event).encode(),
        PublisherMetrics(registry),
        producer,  # type: ignore[arg-type]
        summary_interval_s=0.0,
    )
    return pub, producer, registry


def event(*samples: Sample, **fields: Any) -> MetricEvent:
    return replace(
        MetricEvent("web-1", "system", T0, samples or (Sample("node_load1", 0.5),)), **fields
    )


def test_invalid_samples_are_dropped_counted_and_logged(caplog) -> None:
    pub, producer, registry = publisher()
    bad_counter = Sample("node_intr_total", -5.0, {}, MetricKind.COUNTER)
    sent = event(
        Sample("node_load1", 0.5),
        Sample("node_load5", float("nan")),
        bad_counter,
        Sample("node_load15", 0.25, {"x": "y" * 5000}),
    )
    assert pub.publish(sent)
    [message] = producer.produced
    assert b"node_load1" in message["value"]
    assert b"node_load5" not in message["value"]
    assert b"node_intr_total" not in message["value"]
    assert pub.invalid_samples == 3
    for error in ("NonFiniteValue", "NegativeCounter", "InvalidLabelValue"):
        count = registry.get_sample_value(
            "hoststream_producer_invalid_samples_total", {"family": "system", "error": error}
        )
        assert count == 1, error
    with caplog.at_level(logging.WARNING):
        pub.service()
    assert "3 invalid sample(s) not sent" in caplog.text


def test_an_event_with_an_invalid_host_id_is_not_sent() -> None:
    pub, producer, _ = publisher()
    assert pub.publish(event(host="h" * 10_000))
    assert pub.publish(event(host_labels={"job": "mine"}))
    assert producer.produced == []
    assert pub.invalid_events == 2


def test_an_event_of_only_invalid_samples_is_not_sent_but_an_empty_one_is() -> None:
    pub, producer, _ = publisher()
    assert pub.publish(event(Sample("node_load1", float("inf"))))
    assert producer.produced == []
    assert pub.publish(replace(event(), samples=()))
    assert len(producer.produced) == 1


def test_the_producers_own_clock_stamps_events_so_simulated_time_is_not_refused() -> None:
    pub, producer, _ = publisher()
    # --speedup runs ahead of the wall clock; the consumers' limits apply there, not here.
    assert pub.publish(event(timestamp_ms=T0 + 10 * 365 * 86_400_000))
    assert len(producer.produced) == 1

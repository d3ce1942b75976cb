"""With reports of failed deliveries only, acknowledged events and samples are still counted.

Kafka is replaced by a test double of a librdkafka producer configured with
``delivery.report.only.error``: messages stay in its queue (``len``) until
delivered, and only a failure calls the message's delivery callback. The
serializers and the simulated fleet are the real ones.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from hoststream.producers.acknowledgements import InOrderAcknowledgements, QueuedRun
from hoststream.producers.publisher import EventPublisher, PublisherMetrics
from hoststream.producers.simulation import SimulatedFleet
from tests.support.doubles.producer import RecordingProducer, recording_publisher

T0 = 1_767_225_600_000
INTERVAL = 10_000


class ErrorOnlyProducer(RecordingProducer):
    """Test double of confluent_kafka.Producer reporting failed deliveries only.

    A message stays in :attr:`in_flight` (librdkafka's queue) until delivered.
    """

    @property
    def in_flight(self) -> list[dict[str, Any]]:
        return self.produced

    def deliver(self, indices: list[int], failing: frozenset[int] = frozenset()) -> None:
        """Settle the messages in flight at ``indices``; those in ``failing`` fail."""
        for index in indices:
            if index in failing:
                self.in_flight[index]["on_delivery"](KafkaError(KafkaError._MSG_TIMED_OUT), None)
        for index in sorted(indices, reverse=True):
            del self.in_flight[index]

    def flush(self, _timeout: float) -> int:
        self.deliver(list(range(len(self.in_flight))))
        return 0

    def __len__(self) -> int:
        return len(self.in_flight)


def publisher() -> tuple[EventPublisher, ErrorOnlyProducer, CollectorRegistry]:
    return recording_publisher(ErrorOnlyProducer(), event_timestamps=False, error_reports_only=True)


def family_counts(registry: CollectorRegistry, name: str) -> dict[str, float]:
    return {
        family: registry.get_sample_value(name, {"family": family}) or 0.0
        for family in SimulatedFleet(0).families
    }


def test_acknowledged_events_are_those_no_longer_queued_and_their_samples_follow_in_order() -> None:
    pub, producer, registry = publisher()
    fleet = SimulatedFleet(4, seed=5)
    samples = []
    for tick in range(3):  # the first tick takes the event-by-event path, the others batches
        for batch in fleet.event_batches(T0 + tick * INTERVAL, INTERVAL, hosts_per_batch=3):
            pub.publish_batch(batch)
            samples += [len(values.values) for values in batch.event_values()]
    assert len(producer.in_flight) == len(samples) == 60

    producer.deliver(list(range(23)))
    pub.service()

    assert pub.acknowledged == 23
    assert pub.acknowledged_samples == sum(samples[:23])
    assert sum(family_counts(registry, "hoststream_producer_events_total").values()) == 23

    producer.deliver([5, 0, 30])  # out of order: the count is exact, the samples in order
    assert pub.acknowledged == 26
    assert pub.acknowledged_samples == sum(samples[:26])

    assert pub.flush(1.0) == 0
    assert pub.acknowledged == 60
    assert pub.acknowledged_samples == sum(samples)
    assert family_counts(registry, "hoststream_producer_events_total") == dict.fromkeys(
        fleet.families, 12.0
    )
    assert sum(family_counts(registry, "hoststream_producer_samples_total").values()) == sum(
        samples
    )


def test_failed_deliveries_are_left_out_of_every_count() -> None:
    pub, producer, registry = publisher()
    fleet = SimulatedFleet(2, seed=5)
    queued = []
    for tick in range(2):
        for batch in fleet.event_batches(T0 + tick * INTERVAL, INTERVAL):
            pub.publish_batch(batch)
            queued += [(v.template.family, len(v.values)) for v in batch.event_values()]

    # The second (memory) and the fourth (network) of the first tick fail, in flight.
    producer.deliver([1, 3, 6], failing=frozenset({1, 3}))
    pub.service()

    assert pub.failed == 2
    assert pub.acknowledged == 1
    assert pub.acknowledged_samples == queued[0][1]  # cpu's, the first in order left

    pub.flush(1.0)
    assert pub.acknowledged == 18
    assert pub.acknowledged_samples == sum(s for _, s in queued) - queued[1][1] - queued[3][1]
    events = family_counts(registry, "hoststream_producer_events_total")
    assert events == {"cpu": 4, "memory": 3, "disk": 4, "network": 3, "system": 4}
    samples = family_counts(registry, "hoststream_producer_samples_total")
    for family in fleet.families:
        assert samples[family] == sum(
            s for i, (f, s) in enumerate(queued) if f == family and i not in (1, 3)
        )
    failures = registry.get_sample_value(
        "hoststream_producer_delivery_failures_total",
        {"family": "memory", "error": "_MSG_TIMED_OUT"},
    )
    assert failures == 1


def test_a_failure_takes_the_place_of_the_first_pending_message_like_it() -> None:
    registry = CollectorRegistry()
    metrics = PublisherMetrics(registry)
    acks = InOrderAcknowledgements(metrics.produced, metrics.samples)
    acks.queue(QueuedRun(["cpu", "memory", "cpu"], [10, 3, 10]))
    acks.queue(QueuedRun(["cpu", "memory"], [10, 3]), sent=1)

    acks.fail("memory", 3)
    acks.settle(in_flight=1)

    # Of four queued, one failed and one is in flight: two acknowledged, both cpu.
    assert (acks.acknowledged, acks.acknowledged_samples) == (2, 20)
    assert registry.get_sample_value("hoststream_producer_events_total", {"family": "cpu"}) == 2
    assert (
        registry.get_sample_value("hoststream_producer_events_total", {"family": "memory"}) is None
    )
    acks.settle(in_flight=0)
    assert (acks.acknowledged, acks.acknowledged_samples) == (3, 30)

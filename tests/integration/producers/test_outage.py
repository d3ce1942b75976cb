"""With the broker down the producer keeps a bounded buffer, counts drops, and resumes by itself.

The test stops and restarts the stack's real Kafka broker, so it runs only
against a stack this test session manages.
"""

from __future__ import annotations

import os

import pytest

from hoststream.config import Settings
from hoststream.producers.agent import create_metric_topics
from hoststream.producers.publisher import EventPublisher
from hoststream.schemas import MetricEvent, Sample, codec_for
from hoststream.stack import Stack
from hoststream.topics import metric_topic
from tests.support.kafka import drain
from tests.support.paths import STATE_DIR
from tests.support.services import PORT_OFFSET

BUFFER = 200


def event(i: int) -> MetricEvent:
    return MetricEvent(
        host=f"h{i % 7}",
        family="cpu",
        timestamp_ms=1_700_000_000_000 + i * 1000,
        samples=(Sample("node_load1", float(i)),),
        seq=i,
    )


@pytest.mark.skipif(
    bool(os.environ.get("HOSTSTREAM_KAFKA_BOOTSTRAP")) and not (STATE_DIR / "stack.env").exists(),
    reason="needs a broker this session can stop and start (the local stack)",
)
def test_outage_bounded_buffer_counted_drops_and_resume(services: Settings, unique: str) -> None:
    settings = services.model_copy(
        update={"topic_prefix": f"{unique}.", "producer_buffer_max_messages": BUFFER}
    )
    create_metric_topics(settings, ["cpu"])
    publisher = EventPublisher(settings, codec_for(settings, MetricEvent).serializer)
    assert publisher.publish(event(0))  # registers the schema while the broker is up
    assert publisher.flush(30) == 0

    [broker] = [
        s for s in Stack(STATE_DIR, port_offset=PORT_OFFSET).services() if s.name == "kafka"
    ]
    broker.stop()
    try:
        accepted = 1
        for i in range(1, 1001):
            accepted += publisher.publish(event(i))
            publisher.service()
        # The buffer held at most its bound; the rest were dropped and counted.
        assert publisher.buffered() <= BUFFER
        assert accepted <= BUFFER + 1
        dropped = publisher.metrics.dropped.labels("cpu")._value.get()
        assert dropped == 1001 - accepted
        assert dropped >= 1000 - BUFFER
    finally:
        broker.start()

    # Back: what was buffered is delivered without any help, then new events flow.
    assert publisher.flush(120) == 0
    assert publisher.publish(event(5000))
    assert publisher.flush(30) == 0
    messages = drain(settings, [metric_topic(settings, "cpu")], expected=accepted + 1)
    assert len(messages) == accepted + 1
    assert publisher.acknowledged == accepted + 1

"""Alert rules in the Faust worker: a busy host fires, calms down and resolves."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.kafka import consumer_config
from hoststream.schemas import AlertEvent, AlertState, MetricEvent, MetricKind, Sample, codec_for
from hoststream.streams.rules import dedup_key
from hoststream.topics import alerts_topic
from tests.support.streams import MIN, produce

RULES = """\
rules:
  - name: BusyHost
    selector: {metric: hoststream_cpu_busy_ratio, labels: {cpu: ""}, window: 1m}
    aggregate: mean
    comparison: ">"
    threshold: 0.9
    clear_threshold: 0.5
    for: 2
    severity: critical
    annotations: {summary: "{host} is {value:.0%} busy"}
"""


def cpu_events(t0: int) -> list[MetricEvent]:
    """Busy (user time only) for 4 minutes, then idle for 3, then one event 10 minutes on."""
    idle = user = 0.0
    events = []
    for step in range(7 * 6):
        if step >= 4 * 6:
            idle += 10
        elif step:
            user += 10
        samples = (
            Sample(
                "node_cpu_seconds_total", idle, {"cpu": "0", "mode": "idle"}, MetricKind.COUNTER
            ),
            Sample(
                "node_cpu_seconds_total", user, {"cpu": "0", "mode": "user"}, MetricKind.COUNTER
            ),
        )
        events.append(MetricEvent("busy-1", "cpu", t0 + step * 10_000, samples, seq=step))
    events.append(MetricEvent("busy-1", "cpu", t0 + 17 * MIN, samples, seq=99))
    return events


def read_alerts(settings, expected: int, worker, timeout_s: float = 120) -> list[AlertEvent]:
    deserializer = codec_for(settings, AlertEvent).deserializer
    consumer = Consumer(consumer_config(settings, f"reader-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([alerts_topic(settings)])
    found: dict[bytes, AlertEvent] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            assert worker.alive(), worker.tail()
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            event = deserializer(
                message.value(), SerializationContext(message.topic(), MessageField.VALUE)
            )
            assert message.key() == event.dedup_key.encode()
            found.setdefault(message.value(), event)  # repeats must be byte-identical
    finally:
        consumer.close()
    return sorted(found.values(), key=lambda e: e.event_time)


def test_busy_host_fires_and_resolves(stream_settings, start_worker, tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    now = time.time_ns() // 1_000_000 + 86_400_000  # ahead: no wall-clock closes in the test
    t0 = now - now % (5 * MIN)
    produce(stream_settings, cpu_events(t0))
    worker = start_worker("--rules", str(rules), "--session-timeout", "10")

    alerts = read_alerts(stream_settings, 2, worker)
    assert [(a.state, a.window_end) for a in alerts] == [
        (AlertState.FIRING, t0 + 2 * MIN),
        (AlertState.RESOLVED, t0 + 5 * MIN),
    ], worker.tail()
    firing, resolved = alerts
    key = dedup_key("BusyHost", "busy-1", "hoststream_cpu_busy_ratio", {})
    assert firing.dedup_key == resolved.dedup_key == key
    assert firing.value == 1.0
    assert resolved.value == 0.0
    assert firing.annotations == {"summary": "busy-1 is 100% busy"}
    assert (resolved.starts_at, resolved.ends_at) == (t0 + 2 * MIN, t0 + 5 * MIN)

"""A sink reading a backlog, against the real broker, registry and VictoriaMetrics.

The test bounds how long the backlog takes by far less than what the loop
would have waited for nothing before: a behaviour, not a speed.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.sinks import BatchPolicy, build_sink
from tests.support.sinks import ThreadedSink, events, group_settings, produce, wait_committed


def _start(settings: Settings, group: str, topic: str, **kwargs) -> ThreadedSink:
    registry = CollectorRegistry()
    loop = build_sink(
        "victoriametrics", settings, registry=registry, group_id=group, topics=[topic], **kwargs
    )
    sink = ThreadedSink(loop, registry)
    sink.thread.start()
    return sink


def test_the_last_records_of_a_backlog_are_written_without_waiting_out_the_poll(
    services: Settings, make_topic, unique: str
) -> None:
    settings = group_settings(services, unique)
    topic = make_topic("metrics.cpu", partitions=1)
    make_topic("metrics.cpu.dlq")
    produce(settings, topic, events(unique, hosts=5, per_host=8))  # 40: five batches of 7, and 5
    # Batches are due only when full or when the backlog is read to its end
    # (not by age), and a poll may wait 30 s for a full batch.
    sink = _start(settings, unique, topic, policy=BatchPolicy(max_records=7, max_delay_s=600))
    sink.loop._poll_timeout_s = 30.0
    try:
        wait_committed(settings, unique, topic, timeout_s=15)
    finally:
        sink.close()

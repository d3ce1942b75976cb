"""Producing test records, running a sink, and reading VictoriaMetrics back."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.kafka import admin_client, consumer_config, producer_config
from hoststream.schemas import MetricEvent, MetricKind, Sample, codec_for
from hoststream.sinks import BatchPolicy, SinkConsumer, build_sink

HERE = Path(__file__).resolve().parent
#: samples per event made by :func:`event`
SAMPLES_PER_EVENT = 3


def event(host: str, timestamp_ms: int, seq: int) -> MetricEvent:
    return MetricEvent(
        host=host,
        family="cpu",
        timestamp_ms=timestamp_ms,
        seq=seq,
        host_labels={"region": "test"},
        samples=(
            Sample(
                "node_cpu_seconds_total",
                100.0 + seq,
                {"cpu": "0", "mode": "idle"},
                MetricKind.COUNTER,
            ),
            Sample(
                "node_cpu_seconds_total",
                5.0 + seq,
                {"cpu": "0", "mode": "user"},
                MetricKind.COUNTER,
            ),
            Sample("node_load1", seq / 10),
        ),
    )


def events(
    prefix: str, hosts: int, per_host: int, start_ms: int | None = None
) -> list[MetricEvent]:
    """``hosts * per_host`` events, 10 s apart, ending about now."""
    start = (
        start_ms if start_ms is not None else (int(time.time()) // 10 * 10 - per_host * 10) * 1000
    )
    return [
        event(f"{prefix}-h{h}", start + i * 10_000, i)
        for i in range(per_host)
        for h in range(hosts)
    ]


def produce(
    settings: Settings,
    topic: str,
    records: Iterable[MetricEvent | bytes],
    producer: Producer | None = None,
) -> int:
    serializer = codec_for(settings, MetricEvent).serializer
    producer = producer or Producer(producer_config(settings))
    ctx = SerializationContext(topic, MessageField.VALUE)
    count = 0
    for record in records:
        if isinstance(record, bytes):
            producer.produce(topic, key=b"poison", value=record, headers=[("origin", b"test")])
        else:
            producer.produce(topic, key=record.host.encode(), value=serializer(record, ctx))
        count += 1
        producer.poll(0)
    assert producer.flush(30) == 0
    return count


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer(consumer_config(settings, f"probe-{uuid.uuid4().hex[:8]}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def committed(
    settings: Settings, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    # A consumer that never subscribes does not join the group; it only reads its offsets.
    consumer = Consumer(consumer_config(settings, group))
    try:
        result = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in result}
    finally:
        consumer.close()


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


def wait_committed(settings: Settings, group: str, topic: str, timeout_s: float = 60) -> None:
    ends = end_offsets(settings, topic)

    def done() -> bool:
        offsets = committed(settings, group, topic, ends)
        # An empty partition has no committed offset at all (negative).
        return all(offsets[p] == end or end == 0 for p, end in ends.items())

    wait_for(
        done,
        timeout_s,
        f"group {group} to commit {ends} on {topic}",
    )


class ThreadedSink:
    """A sink's consumer loop in a thread of this process, stopped like SIGTERM would."""

    def __init__(self, loop: SinkConsumer, registry: CollectorRegistry) -> None:
        self.loop = loop
        self.registry = registry
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    @classmethod
    def start(
        cls, kind: str, settings: Settings, group: str, topics: list[str], **kwargs
    ) -> ThreadedSink:
        registry = CollectorRegistry()
        loop = build_sink(
            kind, settings, registry=registry, group_id=group, topics=topics, **kwargs
        )
        sink = cls(loop, registry)
        sink.thread.start()
        return sink

    def _run(self) -> None:
        try:
            self.loop.run(self.stop)
        except BaseException as exc:  # reported by close()
            self.error = exc

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def close(self, timeout_s: float = 60) -> None:
        self.stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the sink did not stop"
        if self.error is not None:
            raise self.error


def sink_process(
    kind: str, settings: Settings, group: str, topic: str, log: Path, max_records: int = 50
) -> subprocess.Popen[bytes]:
    """``run_sink`` in a child process, as ``hoststream sink`` would run it."""
    env = {**os.environ, "HOSTSTREAM_TOPIC_PREFIX": settings.topic_prefix}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(HERE / "sink_main.py"), kind, group, topic, str(max_records)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_started(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    """Until the child logged that it consumes: before that a SIGTERM finds no handler."""
    marker = f" {process.pid} INFO hoststream.sinks.app: sink "
    wait_for(
        lambda: process.poll() is not None or marker in log.read_text(errors="replace"),
        timeout_s,
        f"sink process {process.pid} to start",
    )
    assert process.poll() is None, log.read_text(errors="replace")[-3000:]


# -- VictoriaMetrics ---------------------------------------------------------


def vm_export(settings: Settings, match: str) -> list[dict]:
    httpx.get(f"{settings.vm_url}/internal/force_flush", timeout=10).raise_for_status()
    response = httpx.post(f"{settings.vm_url}/api/v1/export", data={"match[]": match}, timeout=30)
    response.raise_for_status()
    return [json.loads(line) for line in response.text.splitlines() if line]


def vm_samples(settings: Settings, match: str) -> Counter[tuple[str, int]]:
    """How often each (series, timestamp) is stored: 1 each unless duplicated."""
    counts: Counter[tuple[str, int]] = Counter()
    for line in vm_export(settings, match):
        series = json.dumps(line["metric"], sort_keys=True)
        for ts in line["timestamps"]:
            counts[(series, ts)] += 1
    return counts


def vm_query(settings: Settings, query: str) -> list[dict]:
    httpx.get(f"{settings.vm_url}/internal/force_flush", timeout=10).raise_for_status()
    response = httpx.get(
        f"{settings.vm_url}/api/v1/query", params={"query": query, "nocache": "1"}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_vm_total(settings: Settings, match: str, expected: int, timeout_s: float = 30) -> Counter:
    """Poll until ``expected`` samples are searchable (a new series takes a moment)."""
    found: Counter = Counter()

    def enough() -> bool:
        nonlocal found
        found = vm_samples(settings, match)
        return sum(found.values()) >= expected

    # On a timeout the caller's assertion shows what did arrive.
    with contextlib.suppress(AssertionError):
        wait_for(enough, timeout_s, f"{expected} samples matching {match}", every_s=1.0)
    return found


def group_settings(services: Settings, unique: str) -> Settings:
    """The services with this test's own topic prefix."""
    return services.model_copy(update={"topic_prefix": f"{unique}."})


def small_policy(max_records: int = 50) -> BatchPolicy:
    return BatchPolicy(max_records=max_records, max_delay_s=0.3)


def admin_delete(settings: Settings, *topics: str) -> None:
    admin_client(settings).delete_topics(list(topics), operation_timeout=10)

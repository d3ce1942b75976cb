"""A simulated fleet with known values, stream workers as subprocesses, and reading results.

A pytest plugin: ``stream_settings`` and ``start_worker`` are fixtures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.config import Settings
from hoststream.kafka import (
    TopicSpec,
    admin_client,
    consumer_config,
    ensure_topics,
    producer_config,
)
from hoststream.schemas import MetricEvent, MetricKind, Sample, WindowAggregate, codec_for
from hoststream.schemas.records import FAMILIES
from hoststream.streams.topics import prepare_topics
from hoststream.streams.windows import DEFAULT_WINDOWS, WindowSize
from hoststream.topics import aggregate_topic, metric_topic
from tests.support.paths import REPO

MIN = 60_000
INTERVAL = 10_000
HOSTS = ("web-1", "web-2", "db-1")
MODES = {"idle": 0.7, "user": 0.2, "system": 0.1}


def fleet_events(t0: int, minutes: int, reset_at: int = 40) -> list[MetricEvent]:
    """Three hosts, three families, known values: a gauge, a counter with a reset, CPU time.

    Values are multiples of 1/8, so every sum is exact whatever the order of addition.
    """
    events = []
    for step in range(minutes * MIN // INTERVAL):
        ts = t0 + step * INTERVAL
        for h, host in enumerate(HOSTS):
            load = ((step * 7 + h * 13) % 40) / 8
            rx = (step - reset_at) * 1024.0 if step >= reset_at else 1e6 + step * 4096.0
            cpu = tuple(
                Sample(
                    "node_cpu_seconds_total",
                    500.0 + step * 10 * share * (cpu + 1) / 2,
                    {"cpu": str(cpu), "mode": mode},
                    MetricKind.COUNTER,
                )
                for cpu in (0, 1)
                for mode, share in MODES.items()
            )
            events += [
                MetricEvent(host, "system", ts, (Sample("node_load1", load),), seq=step),
                MetricEvent(
                    host,
                    "network",
                    ts,
                    (
                        Sample(
                            "node_network_receive_bytes_total",
                            rx,
                            {"device": "eth0"},
                            MetricKind.COUNTER,
                        ),
                    ),
                    seq=step,
                ),
                MetricEvent(host, "cpu", ts, cpu, seq=step),
            ]
    return events


def closers(t: int) -> list[MetricEvent]:
    """One event per (host, family) far enough ahead to close every earlier window."""
    return [
        MetricEvent(host, family, t, (Sample("hoststream_test_closer", 0.0),))
        for host in HOSTS
        for family in ("system", "network", "cpu")
    ]


def produce(settings: Settings, events: list[MetricEvent]) -> None:
    families = sorted({e.family for e in events})
    specs = [TopicSpec(metric_topic(settings, f), settings.topic_partitions, 1) for f in families]
    ensure_topics(settings, specs)  # as the producer does; brokers do not auto-create
    serializer = codec_for(settings, MetricEvent).serializer
    producer = Producer(producer_config(settings))
    for event in events:
        topic = metric_topic(settings, event.family)
        value = serializer(event, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=event.host.encode(), value=value)
    assert producer.flush(30) == 0


AggKey = tuple[str, str, tuple[tuple[str, str], ...], int, int]


def key_of(a: WindowAggregate) -> AggKey:
    return (a.host, a.metric, tuple(sorted(a.labels.items())), a.window_size_ms, a.window_start)


def read_aggregates(
    settings: Settings,
    windows: tuple[WindowSize, ...],
    expected: int,
    workers: Sequence[Worker] = (),
    timeout_s: float = 150,
) -> list[tuple[bytes, bytes, WindowAggregate]]:
    """Every aggregate record from the start: (key, raw value, decoded).

    Reads until ``expected`` distinct windows arrived and then 3 s more (to
    catch duplicates), or until ``timeout_s``, or until a worker dies.
    """
    deserializer = codec_for(settings, WindowAggregate).deserializer
    consumer = Consumer(consumer_config(settings, f"reader-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([aggregate_topic(settings, w) for w in windows])
    records: list[tuple[bytes, bytes, WindowAggregate]] = []
    distinct: set[AggKey] = set()
    deadline = time.monotonic() + timeout_s
    complete_at: float | None = None
    try:
        while time.monotonic() < deadline:
            if complete_at is not None and time.monotonic() > complete_at + 3:
                break
            for worker in workers:
                assert worker.alive(), worker.tail()
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            ctx = SerializationContext(message.topic(), MessageField.VALUE)
            aggregate = deserializer(message.value(), ctx)
            records.append((message.key(), message.value(), aggregate))
            distinct.add(key_of(aggregate))
            if complete_at is None and len(distinct) >= expected:
                complete_at = time.monotonic()
    finally:
        consumer.close()
    return records


def committed_offsets(settings: Settings, group: str, families: Sequence[str]) -> int:
    """The sum of the offsets ``group`` has committed on the metric topics."""
    consumer = Consumer(consumer_config(settings, group))  # never subscribes: no rebalance
    try:
        partitions = [
            TopicPartition(metric_topic(settings, f), p)
            for f in families
            for p in range(settings.topic_partitions)
        ]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def stream_settings(services: Settings, unique: str) -> Iterator[Settings]:
    """Settings with this test's own topic prefix and two partitions; its topics deleted after."""
    settings = services.model_copy(update={"topic_prefix": f"{unique}.", "topic_partitions": 2})
    # The worker creates these too; made here so readers can subscribe before it is up.
    prepare_topics(settings, app_id=f"{unique}-streams", families=FAMILIES, windows=DEFAULT_WINDOWS)
    yield settings
    admin = admin_client(settings)
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(unique)]
    if mine:
        admin.delete_topics(mine, operation_timeout=10)


@pytest.fixture
def start_worker(
    stream_settings: Settings, unique: str, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Start ``hoststream stream`` for this test's topics; workers stop at the end."""
    workers: list[Worker] = []

    def start(*args: str) -> Worker:
        env = {
            **os.environ,
            "HOSTSTREAM_TOPIC_PREFIX": stream_settings.topic_prefix,
            "HOSTSTREAM_TOPIC_PARTITIONS": str(stream_settings.topic_partitions),
            "HOSTSTREAM_STATE_DIR": str(tmp_path / "state"),
            "HOSTSTREAM_LOG_LEVEL": "WARNING",
        }
        log = tmp_path / f"worker-{len(workers)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                # The tests stamp events a day ahead (see test_worker.t0): allow that.
                [
                    sys.executable,
                    "-m",
                    "hoststream",
                    "stream",
                    "--app-id",
                    f"{unique}-streams",
                    "--max-future",
                    "172800",
                    *args,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        worker = Worker(process, log)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()

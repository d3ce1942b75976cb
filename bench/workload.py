"""Data the consumer-side suites share: pre-loaded metric topics, group progress, clean-up."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from hoststream.config import Settings
from hoststream.kafka import admin_client, client_config
from hoststream.producers.agent import create_metric_topics
from hoststream.producers.publisher import EventPublisher
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import FAMILIES, MetricEvent, codec_for
from hoststream.topics import metric_topic


@dataclass
class LoadedTopics:
    """Metric topics filled once with simulated events, and what they hold."""

    settings: Settings
    hosts: int
    ticks: int
    interval_ms: int
    first_ms: int
    messages: Counter[str] = field(default_factory=Counter)  # per topic
    samples: Counter[str] = field(default_factory=Counter)  # per topic
    seconds: float = 0.0

    @property
    def topics(self) -> list[str]:
        return sorted(self.messages)

    @property
    def total_messages(self) -> int:
        return sum(self.messages.values())

    @property
    def total_samples(self) -> int:
        return sum(self.samples.values())

    def samples_of(self, committed: dict[str, int]) -> float:
        """Samples in the first ``committed[topic]`` messages of each topic (topic means)."""
        return sum(
            n * self.samples[topic] / self.messages[topic]
            for topic, n in committed.items()
            if self.messages[topic]
        )

    def describe(self) -> str:
        return (
            f"{self.total_messages:,} MetricEvents ({self.total_samples:,} samples) from "
            f"{self.hosts} simulated hosts x {len(self.topics)} families x {self.ticks} "
            f"collections {self.interval_ms // 1000}s apart "
            f"({self.ticks * self.interval_ms / 60_000:.0f} min of event time), "
            f"Avro via the schema registry, {self.settings.topic_partitions} partitions per topic"
        )


def load_metric_topics(
    settings: Settings,
    *,
    hosts: int,
    target_samples: int,
    seed: int = 7,
    interval_ms: int = 10_000,
) -> LoadedTopics:
    """Produce simulated events with hoststream's publisher until ``target_samples`` are stored.

    Event times run up to a minute ago, one collection every ``interval_ms``,
    so windows open and close as they would for a backlog of real data.
    """
    fleet = SimulatedFleet(hosts, seed=seed)
    per_tick = sum(len(e.samples) for e in fleet.events(1_700_000_000_000, interval_ms))
    fleet = SimulatedFleet(hosts, seed=seed)  # restart its sequence numbers
    ticks = max(2, -(-target_samples // per_tick))
    now_ms = int(time.time() * 1000)
    first_ms = (now_ms - 60_000 - ticks * interval_ms) // interval_ms * interval_ms
    create_metric_topics(settings, FAMILIES)
    publisher = EventPublisher(settings, codec_for(settings, MetricEvent).serializer)
    loaded = LoadedTopics(settings, hosts, ticks, interval_ms, first_ms)
    started = time.monotonic()
    for tick in range(ticks):
        for event in fleet.events(first_ms + tick * interval_ms, interval_ms):
            while not publisher.publish(event):
                publisher.flush(1.0)  # the local buffer is full: let it drain
            topic = metric_topic(settings, event.family)
            loaded.messages[topic] += 1
            loaded.samples[topic] += len(event.samples)
    remaining = publisher.flush(120.0)
    if remaining:
        raise SystemExit(f"{remaining} events were not acknowledged while loading the topics")
    loaded.seconds = time.monotonic() - started
    return loaded


class GroupProgress:
    """How far a consumer group has committed through a set of topics."""

    def __init__(self, settings: Settings, group: str, topics: list[str]) -> None:
        # A consumer that never subscribes only reads the group's committed offsets.
        self._consumer = Consumer({**client_config(settings), "group.id": group})
        metadata = self._consumer.list_topics(timeout=10).topics
        self._partitions = [
            TopicPartition(topic, p) for topic in topics for p in metadata[topic].partitions
        ]
        self.end: dict[tuple[str, int], int] = {}
        for tp in self._partitions:
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=10)
            self.end[(tp.topic, tp.partition)] = high

    def committed(self) -> dict[str, int]:
        """Messages committed per topic (offsets below 0 count as none)."""
        per_topic: Counter[str] = Counter()
        for attempt in range(10):
            try:
                partitions = self._consumer.committed(self._partitions, timeout=10)
                break
            except KafkaException as error:
                # A broker that has just started moves group coordinators while
                # __consumer_offsets is created: NOT_COORDINATOR is retriable.
                if attempt == 9 or not error.args[0].retriable():
                    raise
                time.sleep(0.5)
        for tp in partitions:
            per_topic[tp.topic] += max(0, tp.offset)
        return dict(per_topic)

    def done(self, committed: dict[str, int]) -> bool:
        total = sum(self.end.values())
        return sum(committed.values()) >= total

    def close(self) -> None:
        self._consumer.close()


#: How often :func:`follow` reads a group's commits: a sink's run over the
#: benchmark's two million samples lasts about a second, which a coarser step
#: would time to within a fifth at each end.
FOLLOW_STEP_S = 0.02
#: Steps the window from the first commit seen to the last must span to be
#: timed on its own (half a second: each end within 4 % of it).
_STEADY_STEPS = 25


def follow(
    progress: GroupProgress,
    loaded: LoadedTopics,
    started: float,
    alive: Callable[[], bool],
    cap_s: float,
    what: str,
) -> dict[str, Any]:
    """Poll the group's commits until it has everything or ``cap_s`` passed; return its rates.

    ``samples_per_s`` runs from the first commit seen to the last, so start-up
    (imports, joining the group) is left out; ``samples_per_s_including_startup``
    counts from ``started`` (monotonic seconds).
    """
    first: tuple[float, float] | None = None  # (seconds, samples) at the first commit seen
    samples, now, finished = 0.0, 0.0, False
    while True:
        # A run of a few seconds is timed to within this step at each end
        # (reading the group's offsets is one request to the broker).
        time.sleep(FOLLOW_STEP_S)
        committed = progress.committed()
        now = time.monotonic() - started
        samples = loaded.samples_of(committed)
        if first is None and samples > 0:
            first = (now, samples)
        if progress.done(committed):
            finished = True
            break
        if not alive():
            raise SystemExit(f"{what} stopped before consuming everything")
        if now > cap_s:
            break
    if first is None:
        raise SystemExit(f"{what} committed nothing in {cap_s:.0f}s")
    steady_s = now - first[0]
    # A window of fewer steps than this is timed too coarsely: then the whole
    # run counts, start-up included (a fast run over little data).
    timed = steady_s >= _STEADY_STEPS * FOLLOW_STEP_S
    steady = (samples - first[1]) / steady_s if timed else samples / now
    return {
        "samples_per_s": steady,
        "samples_per_s_including_startup": samples / now,
        "samples_done": round(samples),
        "seconds": round(now, 1),
        "seconds_to_first_commit": round(first[0], 1),
        "finished": finished,
    }


def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete ``names`` (those that exist); waits for the brokers to accept."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [n for n in names if n in existing]
    if not wanted:
        return
    for future in admin.delete_topics(wanted, operation_timeout=30).values():
        try:
            future.result()
        except Exception as exc:  # a topic deleted meanwhile is fine; report the rest
            print(f"could not delete a bench topic: {exc}")


def topics_with_prefix(settings: Settings, prefix: str) -> list[str]:
    """Topics named after ``prefix``, including peers' internal ones (Quix puts it mid-name)."""
    topics = admin_client(settings).list_topics(timeout=10).topics
    return sorted(t for t in topics if prefix in t)


def delete_subjects(settings: Settings, prefix: str) -> None:
    """Delete the schema registry subjects of topics named after ``prefix``."""
    from hoststream.schemas import registry_client_for

    client = registry_client_for(settings)
    if client is None:
        return
    for subject in client.get_subjects():
        if subject.startswith(prefix):
            try:
                client.delete_subject(subject)
                client.delete_subject(subject, permanent=True)
            except Exception as exc:  # leftovers are small; say so and go on
                print(f"could not delete the registry subject {subject}: {exc}")

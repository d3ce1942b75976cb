"""Kafka's own MirrorMaker 2, one dedicated process replicating between the local regions.

It runs ``org.apache.kafka.connect.mirror.MirrorMaker`` (what Kafka's
``connect-mirror-maker.sh`` runs) from the jars ``make install`` fetched from
Maven Central, with one flow each way between every pair of regions. Topics
keep MirrorMaker 2's default replication policy: ``metrics.agg.1m`` of
``region-a`` arrives in ``region-b`` as ``region-a.metrics.agg.1m``, so
records are never copied back where they came from (an identity policy would
loop in an active-active pair). What is copied is
:data:`hoststream.topics.MIRRORED_TOPIC_REGEXES`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from hoststream.stack.base import ServiceStatus, StackPaths
from hoststream.stack.kafka_jars import KafkaJarService
from hoststream.topics import MIRRORED_TOPIC_REGEXES

__all__ = ["MirrorMaker2", "ReplicationLag", "replication_lag"]

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = OUT
logger.mirror.name = org.apache.kafka.connect.mirror
logger.mirror.level = info
"""

#: Seconds between MirrorMaker 2's looks for new topics to mirror (default 600):
#: a pipeline's aggregate topics appear when its stream processor starts.
REFRESH_S = 5
#: Heartbeats are emitted every 5 s; a flow whose newest copied one is older is stuck.
HEARTBEAT_FRESH_S = 30


@dataclass(frozen=True)
class ReplicationLag:
    """Records in a source region's mirrored topics not yet in the target region."""

    source: str
    target: str
    #: None when one of the clusters did not answer.
    messages: int | None


def _client(bootstrap: str) -> dict[str, Any]:
    # log_level 0: a region that is down is reported as such, not logged.
    return {"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000, "log_level": 0}


_Partition = tuple[str, int]


def _partition_records(
    bootstrap: str, topics: Sequence[str] | None
) -> dict[_Partition, int] | None:
    """Records held (end minus start offset) per partition; None: the cluster did not answer.

    ``topics`` None: every topic of the cluster.
    """
    consumer = Consumer({**_client(bootstrap), "group.id": "hoststream-stack-status"})
    try:
        metadata = consumer.list_topics(timeout=3)
        names = [
            t for t in (topics if topics is not None else metadata.topics) if t in metadata.topics
        ]
        held: dict[_Partition, int] = {}
        for name in names:
            for partition in metadata.topics[name].partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(name, partition), timeout=3
                )
                held[(name, partition)] = max(0, high - low)
        return held
    except Exception:  # any failure means "this cluster does not answer"
        return None
    finally:
        consumer.close()


#: A record as MirrorMaker 2 copies it: timestamp, key and value.
_Record = tuple[int, bytes | None, bytes | None]


def _newest_timestamp_ms(bootstrap: str, topic: str) -> int | None:
    """The timestamp of the last record of a one-partition topic; None: none, or no answer."""
    last = _last_records(bootstrap, [topic])
    record = None if last is None else last.get((topic, 0))
    return None if record is None else record[0]


def _last_records(bootstrap: str, topics: Sequence[str]) -> dict[_Partition, _Record] | None:
    """The last record of each non-empty partition of ``topics``; None: no answer."""
    consumer = Consumer({**_client(bootstrap), "group.id": "hoststream-stack-status"})
    try:
        metadata = consumer.list_topics(timeout=3)
        ends: dict[_Partition, int] = {}
        for name in topics:
            if name not in metadata.topics:
                continue
            for partition in metadata.topics[name].partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(name, partition), timeout=3
                )
                if high > low:
                    ends[(name, partition)] = high - 1
        if not ends:
            return {}
        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in ends.items()])
        last: dict[_Partition, _Record] = {}
        deadline = time.monotonic() + 3
        while len(last) < len(ends) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            key = (message.topic() or "", message.partition() or 0)
            if message.offset() == ends.get(key):
                last[key] = (int(message.timestamp()[1]), message.key(), message.value())
        return last if len(last) == len(ends) else None
    except Exception:  # any failure means "this cluster does not answer"
        return None
    finally:
        consumer.close()


def replication_lag(
    source: str, source_bootstrap: str, target: str, target_bootstrap: str
) -> ReplicationLag:
    """How many records of ``source``'s mirrored topics ``target`` lacks, at least.

    MirrorMaker 2 renumbers offsets, so positions cannot be compared; it
    keeps partitions, timestamps, keys and values, and copies a partition in
    order. Two lower bounds are taken and the larger reported: the source's
    record count less the copy's, per topic; and per partition, one record
    when the copy's last record is not the source's last (all of them when
    the copy's partition is empty). Counts alone read 0 while the newest
    records are missing whenever the copy holds duplicates, as it does after
    MirrorMaker 2 restarts (it copies at least once). Topics that were
    themselves mirrored into ``source`` are not copied on.
    """
    patterns = [re.compile(regex) for regex in MIRRORED_TOPIC_REGEXES]
    here = _partition_records(source_bootstrap, None)
    if here is None:
        return ReplicationLag(source, target, None)
    mirrored = {
        (name, partition): held
        for (name, partition), held in here.items()
        if held > 0
        and any(p.fullmatch(name) for p in patterns)
        and not name.startswith(f"{target}.")
    }
    names = sorted({name for name, _partition in mirrored})
    copies = [f"{source}.{name}" for name in names]
    there = _partition_records(target_bootstrap, copies)
    copied_last = _last_records(target_bootstrap, copies)
    source_last = _last_records(source_bootstrap, names)
    if there is None or copied_last is None or source_last is None:
        return ReplicationLag(source, target, None)
    by_tail = 0
    for (name, partition), held in mirrored.items():
        copied = copied_last.get((f"{source}.{name}", partition))
        if copied is None:
            by_tail += held
        elif copied != source_last.get((name, partition)):
            by_tail += 1
    held_here: dict[str, int] = {}
    for (name, _partition), held in mirrored.items():
        held_here[name] = held_here.get(name, 0) + held
    held_there: dict[str, int] = {}
    for (copy, _partition), held in there.items():
        held_there[copy] = held_there.get(copy, 0) + held
    by_count = sum(
        max(0, held - held_there.get(f"{source}.{name}", 0)) for name, held in held_here.items()
    )
    return ReplicationLag(source, target, max(by_tail, by_count))


class MirrorMaker2(KafkaJarService):
    """A dedicated MirrorMaker 2 process, copying each region's aggregates to every other.

    Args:
        clusters: region name (the cluster's alias) -> its Kafka bootstrap.
    """

    start_timeout_s = 150.0
    jar_folder = "mirrormaker"
    jar_marker = "connect-mirror-*.jar"
    jar_title = "MirrorMaker 2"
    log4j2 = _LOG4J2

    def __init__(self, paths: StackPaths, clusters: Mapping[str, str]) -> None:
        super().__init__("mirrormaker2", paths)
        self.clusters = dict(clusters)

    @property
    def address(self) -> str:
        return " <-> ".join(self.clusters)

    @property
    def ports(self) -> list[int]:
        return []  # dedicated mode without its internal REST server binds nothing

    @property
    def flows(self) -> list[tuple[str, str]]:
        return [(a, b) for a in self.clusters for b in self.clusters if a != b]

    def properties(self) -> str:
        """mm2.properties: every cluster, a flow each way, single-broker replication factors."""
        lines = [f"clusters = {', '.join(self.clusters)}"]
        for alias, bootstrap in self.clusters.items():
            lines += [
                f"{alias}.bootstrap.servers = {bootstrap}",
                # The jars declare their plugins: no class-path scan (half a minute
                # each). A worker setting, so per target cluster.
                f"{alias}.plugin.discovery = service_load",
            ]
        for source, target in self.flows:
            lines += [
                f"{source}->{target}.enabled = true",
                f"{source}->{target}.topics = {', '.join(MIRRORED_TOPIC_REGEXES)}",
            ]
        lines += [
            # Consumer groups are each region's own: no offsets to translate.
            "groups.exclude = .*",
            "sync.group.offsets.enabled = false",
            # No authorizer in the local stack.
            "sync.topic.acls.enabled = false",
            f"refresh.topics.interval.seconds = {REFRESH_S}",
            f"refresh.groups.interval.seconds = {REFRESH_S * 12}",
            "emit.heartbeats.interval.seconds = 5",
            "tasks.max = 1",
            "replication.factor = 1",
            "heartbeats.topic.replication.factor = 1",
            "checkpoints.topic.replication.factor = 1",
            "offset-syncs.topic.replication.factor = 1",
            "offset.storage.replication.factor = 1",
            "status.storage.replication.factor = 1",
            "config.storage.replication.factor = 1",
            # Copy a record as soon as it is there: the other region's API answers within seconds.
            "producer.linger.ms = 5",
            "consumer.auto.offset.reset = earliest",
            "",
        ]
        return "\n".join(lines)

    def prepare(self) -> None:
        super().prepare()
        (self.paths.config(self.name) / "mm2.properties").write_text(self.properties())

    def command(self) -> list[str]:
        return self.java_command(
            "org.apache.kafka.connect.mirror.MirrorMaker",
            [str(self.paths.config(self.name) / "mm2.properties")],
            jvm_options=["-Xms128m", "-Xmx384m", "-XX:+UseSerialGC"],
        )

    def _flowing(self, source: str, target: str) -> bool:
        """The target's newest heartbeat copied from the source is recent."""
        newest = _newest_timestamp_ms(self.clusters[target], f"{source}.heartbeats")
        return newest is not None and time.time() * 1000 - newest <= HEARTBEAT_FRESH_S * 1000

    def healthy(self) -> bool:
        """Every flow copies: each target's newest heartbeat copied from its source is recent."""
        return all(self._flowing(source, target) for source, target in self.flows)

    def stuck_flows(self) -> list[tuple[str, str]]:
        """Flows that copy nothing although both their clusters answer.

        Seen with Kafka 4.1: when the cluster that holds a flow's Connect
        state (its target) is gone for a while, that flow's tasks fail to stop
        ("Graceful stop of task ... failed") and do not start again once it is
        back; the other flow carries on. Only a restart of the process helps.
        """
        answering = {
            alias: _partition_records(bootstrap, []) is not None
            for alias, bootstrap in self.clusters.items()
        }
        return [
            (source, target)
            for source, target in self.flows
            if answering[source] and answering[target] and not self._flowing(source, target)
        ]

    def start(self) -> None:
        """Start MirrorMaker 2, or restart it when a flow is stuck (:meth:`stuck_flows`)."""
        if self.running_pid() is not None and self.stuck_flows():
            self.stop()
        super().start()

    def lags(self) -> list[ReplicationLag]:
        return [
            replication_lag(source, self.clusters[source], target, self.clusters[target])
            for source, target in self.flows
        ]

    def status(self) -> ServiceStatus:
        status = super().status()
        if status.pid is None:
            return status
        details = [
            f"lag {lag.source}->{lag.target} "
            + ("?" if lag.messages is None else f"{lag.messages} msgs")
            for lag in self.lags()
        ]
        details += [
            f"{source}->{target} stuck (`stack up` restarts it)"
            for source, target in (self.stuck_flows() if not status.healthy else [])
        ]
        detail = ", ".join(details)
        return ServiceStatus(status.name, status.address, status.pid, status.healthy, detail)

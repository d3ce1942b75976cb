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


def _record_counts(bootstrap: str, topics: Sequence[str] | None) -> dict[str, int] | None:
    """Records held (end minus start offset, summed over partitions) per topic; None: no answer.

    ``topics`` None: every topic of the cluster.
    """
    consumer = Consumer({**_client(bootstrap), "group.id": "hoststream-stack-status"})
    try:
        metadata = consumer.list_topics(timeout=3)
        names = [
            t for t in (topics if topics is not None else metadata.topics) if t in metadata.topics
        ]
        counts: dict[str, int] = {}
        for name in names:
            total = 0
            for partition in metadata.topics[name].partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(name, partition), timeout=3
                )
                total += max(0, high - low)
            counts[name] = total
        return counts
    except Exception:  # any failure means "this cluster does not answer"
        return None
    finally:
        consumer.close()


def _newest_timestamp_ms(bootstrap: str, topic: str) -> int | None:
    """The timestamp of the last record of a one-partition topic; None: none, or no answer."""
    consumer = Consumer({**_client(bootstrap), "group.id": "hoststream-stack-status"})
    try:
        if topic not in consumer.list_topics(topic, timeout=3).topics:
            return None
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=3)
        if high <= low:
            return None
        consumer.assign([TopicPartition(topic, 0, high - 1)])
        message = consumer.poll(3)
        if message is None or message.error() is not None:
            return None
        return int(message.timestamp()[1])
    except Exception:  # any failure means "this cluster does not answer"
        return None
    finally:
        consumer.close()


def replication_lag(
    source: str, source_bootstrap: str, target: str, target_bootstrap: str
) -> ReplicationLag:
    """How many records of ``source``'s mirrored topics ``target`` lacks.

    Counts records (end minus start offsets) of each topic MirrorMaker 2
    copies from ``source`` and of its ``<source>.<topic>`` copy in ``target``;
    MirrorMaker 2 renumbers offsets, so counts are compared, not positions.
    Topics that were themselves mirrored into ``source`` are not copied on.
    """
    patterns = [re.compile(regex) for regex in MIRRORED_TOPIC_REGEXES]
    here = _record_counts(source_bootstrap, None)
    if here is None:
        return ReplicationLag(source, target, None)
    mirrored = {
        name: count
        for name, count in here.items()
        if any(p.fullmatch(name) for p in patterns) and not name.startswith(f"{target}.")
    }
    there = _record_counts(target_bootstrap, [f"{source}.{name}" for name in mirrored])
    if there is None:
        return ReplicationLag(source, target, None)
    missing = sum(
        max(0, count - there.get(f"{source}.{name}", 0)) for name, count in mirrored.items()
    )
    return ReplicationLag(source, target, missing)


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
            alias: _record_counts(bootstrap, []) is not None
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

"""Consumer-group lag is asked of Kafka only once the offsets topic has leaders.

librdkafka 2.16 kills the process (SIGSEGV) when asked for a group's committed
offsets on a cluster that has not created ``__consumer_offsets`` yet. The admin
client here is a test double (an in-memory stand-in for confluent-kafka's
``AdminClient``) that records what it was asked and fails the test if group
offsets are requested before the topic is ready.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from hoststream.config import Settings
from hoststream.group_lag import OFFSETS_TOPIC, GroupLagCollector


@dataclass
class PartitionDouble:
    leader: int
    error: object | None = None


@dataclass
class TopicDouble:
    partitions: dict[int, PartitionDouble]
    error: object | None = None


@dataclass
class MetadataDouble:
    topics: dict[str, TopicDouble]


def _resolved(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


@dataclass
class AdminDouble:
    """Test double: a cluster with one topic ``t`` of two partitions ending at 100 and 50."""

    offsets_topic: TopicDouble | None
    committed: dict[str, list[TopicPartition]] = field(default_factory=dict)
    group_offsets_asked: list[str] = field(default_factory=list)
    ends_time_out: bool = False

    def list_topics(self, timeout: float) -> MetadataDouble:
        topics = {"t": TopicDouble({0: PartitionDouble(1), 1: PartitionDouble(1)})}
        if self.offsets_topic is not None:
            topics[OFFSETS_TOPIC] = self.offsets_topic
        return MetadataDouble(topics)

    def list_consumer_group_offsets(
        self, requests: list[ConsumerGroupTopicPartitions], **_: Any
    ) -> dict[str, Future[ConsumerGroupTopicPartitions]]:
        if not self._offsets_topic_led():
            pytest.fail("group offsets asked for before the offsets topic had leaders")
        group = requests[0].group_id
        self.group_offsets_asked.append(group)
        return {group: _resolved(ConsumerGroupTopicPartitions(group, self.committed[group]))}

    def list_offsets(
        self, requests: dict[TopicPartition, Any], **_: Any
    ) -> dict[TopicPartition, Future[Any]]:
        ends = {0: 100, 1: 50}
        if self.ends_time_out:
            late: Future[Any] = Future()
            late.set_exception(TimeoutError())
            return dict.fromkeys(requests, late)
        return {
            tp: _resolved(TopicPartition(tp.topic, tp.partition, ends[tp.partition]))
            for tp in requests
        }

    def _offsets_topic_led(self) -> bool:
        topic = self.offsets_topic
        return topic is not None and all(p.leader >= 0 for p in topic.partitions.values())


GROUPS = {"sink-sql": "hoststream-sink-sql"}
COMMITTED = {"hoststream-sink-sql": [TopicPartition("t", 0, 90), TopicPartition("t", 1, 20)]}


def _collector(admin: AdminDouble) -> GroupLagCollector:
    return GroupLagCollector(Settings(), GROUPS, admin=admin)  # type: ignore[arg-type]


def _exposition(collector: GroupLagCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_no_group_offsets_are_asked_for_on_a_cluster_without_an_offsets_topic() -> None:
    admin = AdminDouble(offsets_topic=None, committed=COMMITTED)
    collector = _collector(admin)
    collector.refresh()
    assert admin.group_offsets_asked == []
    assert "hoststream_consumer_group_lag{" not in _exposition(collector)


def test_no_group_offsets_are_asked_for_while_an_offsets_partition_has_no_leader() -> None:
    leaderless = TopicDouble({0: PartitionDouble(1), 1: PartitionDouble(-1)})
    admin = AdminDouble(offsets_topic=leaderless, committed=COMMITTED)
    collector = _collector(admin)
    collector.refresh()
    assert admin.group_offsets_asked == []


def test_lag_is_the_sum_over_partitions_once_the_offsets_topic_is_led() -> None:
    ready = TopicDouble({0: PartitionDouble(1), 1: PartitionDouble(1)})
    admin = AdminDouble(offsets_topic=ready, committed=COMMITTED)
    collector = _collector(admin)
    collector.refresh()
    assert admin.group_offsets_asked == ["hoststream-sink-sql"]
    # (100 - 90) + (50 - 20)
    assert (
        'hoststream_consumer_group_lag{consumer_group="hoststream-sink-sql",group="sink-sql"} 40.0'
        in _exposition(collector)
    )


def test_a_group_that_never_committed_has_no_lag_yet() -> None:
    ready = TopicDouble({0: PartitionDouble(1)})
    never = {"hoststream-sink-sql": [TopicPartition("t", 0, -1001)]}
    admin = AdminDouble(offsets_topic=ready, committed=never)
    collector = _collector(admin)
    collector.refresh()
    assert "hoststream_consumer_group_lag{" not in _exposition(collector)


def test_a_broker_that_does_not_answer_in_time_leaves_the_lag_unread_and_refresh_running() -> None:
    ready = TopicDouble({0: PartitionDouble(1), 1: PartitionDouble(1)})
    admin = AdminDouble(offsets_topic=ready, committed=COMMITTED, ends_time_out=True)
    collector = _collector(admin)
    collector.refresh()  # an exception out of it would end the refresh thread
    assert "hoststream_consumer_group_lag{" not in _exposition(collector)
    admin.ends_time_out = False
    collector.refresh()
    assert 'group="sink-sql"} 40.0' in _exposition(collector)

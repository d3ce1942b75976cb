"""The topics the stream processor creates: Faust's own and those of :mod:`hoststream.topics`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from hoststream.config import Settings
from hoststream.errors import ConfigurationError, StreamsError
from hoststream.kafka import TopicSpec, admin_client, ensure_topics
from hoststream.streams.windows import WindowSize
from hoststream.topics import (
    aggregate_topic,
    alerts_topic,
    dead_letter_topic,
    metric_topic,
    schemas_topic,
)

__all__ = [
    "TABLE_NAME",
    "changelog_topic",
    "leader_topic",
    "prepare_topics",
]


#: Name of the Faust table of window states; its changelog is ``<app id>-windows-changelog``.
TABLE_NAME = "windows"


def changelog_topic(app_id: str) -> str:
    # Faust's own naming: "<app id>-<table name>-changelog".
    return f"{app_id}-{TABLE_NAME}-changelog"


def leader_topic(app_id: str) -> str:
    # Faust's assignor elects a leader through this one-partition topic.
    return f"{app_id}-__assignor-__leader"


def _partition_counts(settings: Settings, names: list[str], timeout_s: float) -> dict[str, int]:
    # A topic created a moment ago may be missing from the metadata for a while.
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        metadata = admin.list_topics(timeout=timeout_s).topics
        if all(name in metadata and metadata[name].partitions for name in names):
            return {name: len(metadata[name].partitions) for name in names}
        if time.monotonic() > deadline:
            missing = [name for name in names if name not in metadata]
            raise StreamsError(f"topics {missing} did not appear within {timeout_s:.0f}s")
        time.sleep(0.2)


def prepare_topics(
    settings: Settings,
    *,
    app_id: str,
    families: Sequence[str],
    windows: Iterable[WindowSize],
    alerts: bool = True,
    timeout_s: float = 30.0,
) -> int:
    """Create every topic the processor needs that is missing; return the partition count.

    Brokers do not auto-create topics. The table's changelog must have as many
    partitions as the metric topics, because a window state is written to the
    changelog partition of the metric partition it came from.

    Raises:
        ConfigurationError: the metric topics exist with different partition
            counts, so one table cannot follow them all.
    """
    sources = [metric_topic(settings, family) for family in families]
    replication = settings.topic_replication_factor
    ensure_topics(
        settings,
        [TopicSpec(name, settings.topic_partitions, replication) for name in sources],
        timeout_s,
    )
    counts = _partition_counts(settings, sources, timeout_s)
    if len(set(counts.values())) != 1:
        raise ConfigurationError(
            "HOSTSTREAM_TOPIC_PARTITIONS",
            f"the metric topics must have equal partition counts, found {counts};"
            " recreate them or use topics of one size",
        )
    partitions = next(iter(counts.values()))
    ensure_topics(
        settings,
        [
            *(TopicSpec(aggregate_topic(settings, w), partitions, replication) for w in windows),
            *(TopicSpec(dead_letter_topic(name), partitions, replication) for name in sources),
            TopicSpec(
                changelog_topic(app_id), partitions, replication, {"cleanup.policy": "compact"}
            ),
            TopicSpec(leader_topic(app_id), 1, replication),
            # One partition: a reader takes in every writer schema in one pass.
            TopicSpec(schemas_topic(settings), 1, replication, {"cleanup.policy": "compact"}),
            *([TopicSpec(alerts_topic(settings), partitions, replication)] if alerts else []),
        ],
        timeout_s,
    )
    return partitions

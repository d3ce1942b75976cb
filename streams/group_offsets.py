"""The stream processor's source partitions as Kafka sees them: ends and committed offsets.

The wall-clock close asks for the partitions' ends (high watermarks) several
times a second while windows come due. It asks through an admin client of
its own, from a thread: through Faust's consumer the request waits for the
consumer thread's fetch in flight, about a second.

A worker knows how far it has read a source partition from its own processing
or its own commits. A partition it took over already read to its end (the
previous owner processed and committed everything, then a rebalance moved it)
gives it neither until a new message arrives: for a stopped workload, never.
The group's committed offset settles it; without it, such a partition would
never count as caught up and its quiet hosts' last windows would never close.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from faust.types import TP

from hoststream.config import Settings
from hoststream.kafka import admin_client, committed_offsets, end_offsets

__all__ = ["GroupOffsets"]

log = logging.getLogger(__name__)


class GroupOffsets:
    """Reads a consumer group's committed offsets and partitions' ends from Kafka.

    Both calls block: run them in a thread.

    Args:
        settings: the Kafka connection (security included).
        group: the consumer group, the Faust application id.
        timeout_s: bound on the request.
        admin: the admin client to ask with; by default one from ``settings``.
    """

    def __init__(
        self,
        settings: Settings,
        group: str,
        timeout_s: float = 5.0,
        *,
        admin: AdminClient | None = None,
    ) -> None:
        self._group, self._timeout_s = group, timeout_s
        self._admin = admin if admin is not None else admin_client(settings)
        self._ends_failing = False

    @property
    def kafka_client(self) -> AdminClient:
        """Its librdkafka client (to follow a rotated SASL password)."""
        return self._admin

    def committed(self, partitions: Iterable[TP]) -> dict[tuple[str, int], int]:
        """The next offset committed per partition; partitions without one are left out."""
        wanted = [(tp.topic, tp.partition) for tp in partitions]
        if not wanted:
            return {}
        try:
            return committed_offsets(self._admin, self._group, wanted, self._timeout_s)
        except (KafkaException, TimeoutError) as exc:
            log.debug("group %s: no committed offsets: %r", self._group, exc)
            return {}

    def ends(self, partitions: Iterable[TP]) -> dict[TP, int]:
        """Each partition's end (high watermark); none at all if Kafka did not answer."""
        wanted = [(tp.topic, tp.partition) for tp in partitions]
        try:
            ends = end_offsets(self._admin, wanted, self._timeout_s)
        except (KafkaException, TimeoutError) as exc:
            # Without the ends no window closes on wall time: that is worth a
            # warning, once a failure rather than several times a second.
            if not self._ends_failing:
                log.warning(
                    "partition ends not read (%r): windows close on wall time again once they are",
                    exc,
                )
            self._ends_failing = True
            return {}
        if self._ends_failing:
            log.info("partition ends read again: windows close on wall time")
            self._ends_failing = False
        return {TP(topic, partition): offset for (topic, partition), offset in ends.items()}

"""Consumer lag of every hoststream consumer group, seen from outside the group.

Each sink and the stream processor report their own lag, but a consumer that
is stopped, hung or crash-looping reports nothing at all, which is exactly
when its lag grows. This collector asks Kafka instead (committed offsets
against the partitions' ends), so the self-monitoring rules
(``deploy/vmalert/hoststream-self.yml``) see a stopped sink's lag grow. The API
serves it on its ``/metrics``: it is the one component that is always up and
already talks to Kafka. Kafka is read by a background thread every
``interval_s``; a scrape only reads the last numbers, so a slow or absent
Kafka never holds up ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hoststream.config import Settings
from hoststream.kafka import admin_client, committed_offsets, end_offsets
from hoststream.topics import sink_group

__all__ = ["GroupLagCollector", "hoststream_groups"]

log = logging.getLogger(__name__)

#: Where Kafka keeps the groups' committed offsets; created by the broker on first use.
OFFSETS_TOPIC = "__consumer_offsets"

#: The stream processor's default Faust application id (its consumer group).
STREAM_APP_ID = "hoststream-streams"


def hoststream_groups(settings: Settings) -> dict[str, str]:
    """The pipeline's consumer groups, by the name the ``group`` label shows."""
    groups = {f"sink-{kind}": sink_group(settings, kind) for kind in ("victoriametrics", "sql")}
    groups["sink-alerts"] = sink_group(settings, "alerts")
    # As the stream processor names its application (streams.app, not imported:
    # it would load Faust into the API).
    groups["stream"] = settings.stream_app_id or settings.topic(STREAM_APP_ID)
    return groups


class GroupLagCollector(Collector):
    """``hoststream_consumer_group_lag{group,consumer_group}``: messages not yet committed.

    ``group`` is the pipeline's name for it (``sink-sql``), ``consumer_group``
    the Kafka group id (which carries ``HOSTSTREAM_TOPIC_PREFIX``), so two
    pipelines on one Kafka stay apart.

    Args:
        settings: Kafka connection.
        groups: ``group`` label to consumer group id (:func:`hoststream_groups`).
        interval_s: how often Kafka is asked.
        admin: an admin client; by default one from ``settings``.
    """

    def __init__(
        self,
        settings: Settings,
        groups: Mapping[str, str],
        interval_s: float = 10.0,
        admin: AdminClient | None = None,
    ) -> None:
        self._admin = admin or admin_client(settings)
        self._groups = dict(groups)
        self._interval_s = interval_s
        self._lag: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="group-lag", daemon=True)

    def start(self, registry: CollectorRegistry) -> None:
        registry.register(self)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hoststream_consumer_group_lag",
            "Messages between the partitions' ends and the group's committed offsets,"
            " read from Kafka (so a stopped consumer's lag shows too).",
            labels=["group", "consumer_group"],
        )
        with self._lock:
            for name, lag in sorted(self._lag.items()):
                family.add_metric([name, self._groups[name]], lag)
        yield family

    def refresh(self) -> None:
        """Ask Kafka for every group's lag now."""
        if not self._offsets_topic_ready():
            return
        for name, group in self._groups.items():
            try:
                lag = self._group_lag(group)
            except (KafkaException, TimeoutError) as exc:
                # A broker that does not answer in time must not end the
                # thread: the gauge would then stay at its last value for good.
                log.debug("lag of %s not read: %r", group, exc)
                continue
            if lag is not None:
                with self._lock:
                    self._lag[name] = lag

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self._interval_s)

    def _offsets_topic_ready(self) -> bool:
        # librdkafka (2.16) crashes the process (SIGSEGV in rdk:main) when asked
        # for a group's offsets before the broker has created its offsets topic,
        # as on a fresh cluster. Until that topic has a leader for every
        # partition no group can have committed, so there is no lag to read.
        try:
            metadata = self._admin.list_topics(timeout=5)
        except KafkaException as exc:
            log.debug("metadata not read: %s", exc)
            return False
        offsets = metadata.topics.get(OFFSETS_TOPIC)
        if offsets is None or offsets.error is not None or not offsets.partitions:
            return False
        return all(p.leader >= 0 and p.error is None for p in offsets.partitions.values())

    def _group_lag(self, group: str) -> int | None:
        committed = committed_offsets(self._admin, group)
        # A group that never committed has nothing to compare yet.
        if not committed:
            return None
        ends = self._ends([TopicPartition(topic, part) for topic, part in committed])
        return sum(max(0, ends[tp] - offset) for tp, offset in committed.items())

    def _ends(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        return end_offsets(self._admin, [(tp.topic, tp.partition) for tp in partitions])

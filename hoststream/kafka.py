"""Kafka client set-up shared by every component: security, tuning, topic creation.

Producers and consumers are confluent-kafka (librdkafka) clients; only bytes
cross this layer, the codecs in :mod:`schemas` make them. Topic names are
in :mod:`hoststream.topics`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

from hoststream.errors import ConfigurationError, KafkaAccessError

if TYPE_CHECKING:
    # Annotations only: the agent process runs without the settings' pydantic models.
    from hoststream.config import Settings

__all__ = [
    "ACCESS_ERRORS",
    "TopicSpec",
    "access_error",
    "admin_client",
    "client_config",
    "committed_offsets",
    "consumer_config",
    "ensure_topics",
    "producer_config",
]


#: Kafka's answers that mean "this principal may not": retrying cannot help, a person must act.
ACCESS_ERRORS = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._AUTHENTICATION,
    }
)


def access_error(error: KafkaError, who: str, doing: str) -> KafkaAccessError | None:
    """A one-line :class:`KafkaAccessError` when ``error`` is a refusal, else None.

    Args:
        error: what the client reported.
        who: the component or principal refused, for the message.
        doing: what it tried, e.g. ``"create topic metrics.cpu"``.
    """
    if error.code() not in ACCESS_ERRORS:
        return None
    reason = error.str().splitlines()[0] if error.str() else error.name()
    return KafkaAccessError(
        f"Kafka refused {who} to {doing}: {reason} ({error.name()}); grant the right with an "
        "ACL or check HOSTSTREAM_KAFKA_SASL_USERNAME and its password"
    )


def _principal(settings: Settings) -> str:
    return f"user {settings.kafka_sasl_username}" if settings.kafka_sasl_username else "this client"


def client_config(settings: Settings) -> dict[str, Any]:
    """Bootstrap and security settings every client needs."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        "client.dns.lookup": "use_all_dns_ips",
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism is None:
            raise ConfigurationError(
                "HOSTSTREAM_KAFKA_SASL_MECHANISM",
                f"required when the security protocol is {settings.kafka_security_protocol}",
            )
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_mechanism != "OAUTHBEARER":
            if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
                raise ConfigurationError(
                    "HOSTSTREAM_KAFKA_SASL_USERNAME",
                    f"username and password are required for SASL {settings.kafka_sasl_mechanism}",
                )
            config["sasl.username"] = settings.kafka_sasl_username
            config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_security_protocol.endswith("SSL"):
        for key, value in (
            ("ssl.ca.location", settings.kafka_ssl_ca_location),
            ("ssl.certificate.location", settings.kafka_ssl_certificate_location),
            ("ssl.key.location", settings.kafka_ssl_key_location),
        ):
            if value is not None:
                if not value.exists():
                    setting = "HOSTSTREAM_KAFKA_" + key.replace(".", "_").upper()
                    raise ConfigurationError(setting, f"file {value} does not exist")
                config[key] = str(value)
        if settings.kafka_ssl_key_password is not None:
            config["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    return config


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """A producer that loses nothing it acknowledged and batches well.

    Idempotence with ``acks=all`` keeps retries from duplicating or reordering;
    zstd compresses the repetitive Avro bodies of metric events about 5x.
    """
    config = {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "zstd",
        "linger.ms": 50,
        "batch.size": 512 * 1024,
        "queue.buffering.max.messages": settings.producer_buffer_max_messages,
        "queue.buffering.max.kbytes": 256 * 1024,
        # librdkafka retries forever within this bound, then reports the failure.
        "message.timeout.ms": 300_000,
        "statistics.interval.ms": 0,
    }
    config.update(overrides)
    return config


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A consumer that commits only what its caller says was stored."""
    config = {
        **client_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        # Sinks subscribe by pattern (metrics.agg.<window> appears when the
        # stream processor starts); the default 5-minute metadata refresh would
        # leave a new topic unread that long.
        "topic.metadata.refresh.interval.ms": 10_000,
        # Once its local queue is full (queued.max.messages.kbytes, 64 MB),
        # librdkafka puts off a partition's next fetch by this much (default
        # 1 s). A sink reading a backlog drained the queue sooner and then
        # sat idle for up to a third of its run; 20 ms keeps it fed.
        "fetch.queue.backoff.ms": 20,
    }
    config.update(overrides)
    return config


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient({**client_config(settings), "log_level": 3})


def committed_offsets(
    admin: AdminClient,
    group: str,
    partitions: Iterable[tuple[str, int]] | None = None,
    timeout_s: float = 5.0,
) -> dict[tuple[str, int], int]:
    """The next offset a consumer group has committed, per (topic, partition).

    Args:
        admin: the admin client to ask with.
        group: the consumer group.
        partitions: the partitions to ask about; None: all the group committed.
        timeout_s: bound on the request.

    Returns:
        Only the partitions with a committed offset; one never committed is left out.

    Raises:
        KafkaException: the broker refused or could not be reached.
        TimeoutError: no answer within ``timeout_s``.
    """
    wanted = None if partitions is None else [TopicPartition(t, p) for t, p in partitions]
    request = ConsumerGroupTopicPartitions(group, wanted)
    futures = admin.list_consumer_group_offsets([request], request_timeout=timeout_s)
    answer = futures[group].result(timeout=timeout_s)
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in answer.topic_partitions or ()
        if tp.error is None and tp.offset >= 0
    }


def end_offsets(
    admin: AdminClient, partitions: Iterable[tuple[str, int]], timeout_s: float = 5.0
) -> dict[tuple[str, int], int]:
    """Each partition's end (high watermark: the offset its next message will get).

    One ListOffsets request per leader broker, not a round trip per partition.
    A request that fails is asked once more after the topics' metadata is
    read anew: librdkafka (2.16) sends ListOffsets with the leader epoch of
    its metadata cache and does not refresh that cache when the broker
    answers FENCED_LEADER_EPOCH. After a broker restart, which leads every
    partition under a new epoch, a long-lived client's every request would
    fail so until something else read the metadata (measured on the local
    stack: still failing 90 s after the restart, answered at once after a
    metadata request).

    Args:
        admin: the admin client to ask with.
        partitions: the partitions to ask about.
        timeout_s: bound on each request.

    Raises:
        KafkaException: the broker refused or could not be reached.
        TimeoutError: no answer within ``timeout_s``.
    """
    wanted = [TopicPartition(t, p) for t, p in partitions]
    if not wanted:
        return {}
    try:
        return _list_ends(admin, wanted, timeout_s)
    except KafkaException:
        for topic in sorted({tp.topic for tp in wanted}):
            admin.list_topics(topic=topic, timeout=timeout_s)
        return _list_ends(admin, wanted, timeout_s)


def _list_ends(
    admin: AdminClient, wanted: list[TopicPartition], timeout_s: float
) -> dict[tuple[str, int], int]:
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    # librdkafka's own bound (default: socket.timeout.ms, 60 s): while a broker
    # is away, requests abandoned after timeout_s would otherwise pile up.
    futures = admin.list_offsets(dict.fromkeys(wanted, latest), request_timeout=timeout_s)
    return {
        (tp.topic, tp.partition): int(future.result(timeout=timeout_s).offset)
        for tp, future in futures.items()
    }


@dataclass(frozen=True)
class TopicSpec:
    """A topic hoststream creates through the admin API (brokers never auto-create)."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def ensure_topics(
    settings: Settings, specs: Iterable[TopicSpec], timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = admin_client(settings)
    specs = list(specs)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [s for s in specs if s.name not in existing]
    if not wanted:
        return []
    min_isr = "2" if min(s.replication_factor for s in wanted) >= 3 else "1"
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication_factor,
                config={"min.insync.replicas": min_isr, **s.config},
            )
            for s in wanted
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0]
            refused = access_error(error, _principal(settings), f"create topic {name}")
            if refused is not None:
                raise refused from exc
            # Another process created it first: that is the outcome we wanted.
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created

"""Entry points: build a sink's consumer loop from the settings, and run it.

``hoststream sink victoriametrics|sql`` runs :func:`run_sink` through
:func:`hoststream.runtime.run_component`; tests may call :func:`build_sink`
and drive the loop themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.errors import ConfigurationError, SinkUnavailableError
from hoststream.gc_policy import tune_for_throughput
from hoststream.kafka import consumer_config
from hoststream.replicated_schemas import ReplicatedSchemas
from hoststream.runtime import Runtime
from hoststream.schemas import (
    AlertEvent,
    AvroRecord,
    MetricEvent,
    RecordDeserializer,
    RegistryAvroDeserializer,
    WindowAggregate,
    codec_for,
    registry_client_for,
)
from hoststream.schemas.validation import Validator
from hoststream.sinks.aggregate_reader import AggregateReader
from hoststream.sinks.base import BatchingSink
from hoststream.sinks.consumer import BatchPolicy, SinkConsumer
from hoststream.sinks.decoding import Routes, TopicDecoder
from hoststream.sinks.dlq import DeadLetterQueue
from hoststream.sinks.metrics import SinkMetrics
from hoststream.sinks.sql import SqlSink
from hoststream.sinks.sql_copy import series_text
from hoststream.sinks.victoriametrics import VictoriaMetricsSink
from hoststream.sinks.vm_aggregates import line_parts
from hoststream.sinks.vm_import import MetricEventReader, import_line_prefixes
from hoststream.sinks.vm_remote_write import aggregate_heads, event_template
from hoststream.tls import client_ssl_context, vm_auth
from hoststream.topics import (
    aggregate_topic_prefix,
    aggregate_topics_pattern,
    alerts_topic,
    alerts_topics_pattern,
    metric_topic_prefix,
    metric_topics_pattern,
    schemas_topic,
    sink_group,
)

__all__ = [
    "SinkKind",
    "build_sink",
    "default_group",
    "default_topics",
    "mirrored_routes",
    "run_sink",
]

log = logging.getLogger(__name__)

SinkKind = Literal["victoriametrics", "sql"]


def default_group(kind: SinkKind, settings: Settings) -> str:
    """The consumer group of a sink kind: ``<prefix>hoststream-sink-<kind>``."""
    return sink_group(settings, kind)


def default_topics(kind: SinkKind, settings: Settings) -> list[str]:
    """What a sink kind subscribes to; ``^``-prefixed names are librdkafka regexes.

    The patterns name every ``metrics.<family>`` and ``metrics.agg.<window>``
    topic that exists or appears later, but never a ``.dlq`` topic. Aggregates
    and alerts mirrored from other regions (``<region>.metrics.agg.<window>``,
    ``<region>.alerts``) are stored too; raw events stay in their region.
    """
    aggregates = aggregate_topics_pattern(settings, mirrored=True)
    if kind == "victoriametrics":
        return [metric_topics_pattern(settings), aggregates]
    return [aggregates, alerts_topics_pattern(settings)]


def mirrored_routes(
    settings: Settings, record_types: Mapping[str, type[AvroRecord]]
) -> Callable[[str], Routes]:
    """For a region's mirrored topics: topic prefix -> a deserializer of that region's records.

    With a registry, the writer schemas are the source region's, as copied
    into ``<region>._schemas`` here (:mod:`hoststream.replicated_schemas`);
    single-object encoding names schemas by fingerprint, the same everywhere.
    """

    def routes(region: str) -> dict[str, RecordDeserializer[Any]]:
        if settings.schema_registry_url is None:
            return {p: codec_for(settings, t).deserializer for p, t in record_types.items()}
        schemas = ReplicatedSchemas(settings, f"{region}.{schemas_topic(settings)}")
        log.info("records mirrored from %s decode with the schemas in %s", region, schemas.topic)
        return {p: RegistryAvroDeserializer(schemas, t) for p, t in record_types.items()}

    return routes


def build_sink(
    kind: SinkKind,
    settings: Settings,
    *,
    registry: CollectorRegistry,
    group_id: str | None = None,
    topics: Sequence[str] | None = None,
    policy: BatchPolicy | None = None,
    sql_schema: str | None = None,
    consumer_overrides: Mapping[str, Any] | None = None,
) -> SinkConsumer[Any]:
    """A ready consumer loop for one sink kind; call ``.run(stop)`` on it.

    Args:
        kind: ``victoriametrics`` (raw samples and aggregates) or ``sql``
            (aggregates and alerts).
        settings: hoststream's settings (Kafka, registry, ``vm_url``, ``sql_dsn``).
        registry: where the sink's Prometheus metrics are registered.
        group_id: the consumer group (default: :func:`default_group`).
        topics: topics or ``^`` regexes to consume (default: :func:`default_topics`).
        policy: batch limits (default: :class:`BatchPolicy`).
        sql_schema: the SQL schema of the tables (default: the DSN's search path).
        consumer_overrides: librdkafka settings over :func:`hoststream.kafka.consumer_config`,
            e.g. a shorter ``session.timeout.ms``.
    """
    if kind not in ("victoriametrics", "sql"):
        raise ConfigurationError("sink", f"unknown sink {kind!r}; expected victoriametrics or sql")
    client = registry_client_for(settings)
    aggregates = codec_for(settings, WindowAggregate, client=client).deserializer
    metrics = SinkMetrics(registry, kind)
    validator = Validator.from_settings(settings)
    sink: BatchingSink[Any]
    if kind == "victoriametrics":
        remote_write = settings.vm_write_format == "remote_write"
        events = MetricEventReader(
            codec_for(settings, MetricEvent, client=client).deserializer,
            validator=validator,
            derive=event_template if remote_write else import_line_prefixes,
        )
        by_series = AggregateReader(aggregates, aggregate_heads if remote_write else line_parts)
        # Longest prefix wins: metrics.agg.* are aggregates, other metrics.* events.
        decoder = TopicDecoder(
            {aggregate_topic_prefix(settings): by_series, metric_topic_prefix(settings): events},
            mirrored_routes(settings, {aggregate_topic_prefix(settings): WindowAggregate}),
        )
        sink = VictoriaMetricsSink(
            settings.vm_url,
            wire_format=settings.vm_write_format,
            on_drop=metrics.store_dropped,
            auth=vm_auth(settings),
            verify=client_ssl_context(settings),
        )
    else:
        alerts = codec_for(settings, AlertEvent, client=client).deserializer
        rows_by_series = AggregateReader(aggregates, series_text)
        decoder = TopicDecoder(
            {aggregate_topic_prefix(settings): rows_by_series, alerts_topic(settings): alerts},
            mirrored_routes(
                settings,
                {
                    aggregate_topic_prefix(settings): WindowAggregate,
                    alerts_topic(settings): AlertEvent,
                },
            ),
        )
        sink = SqlSink(settings.sql_dsn.get_secret_value(), schema=sql_schema)
    group = group_id or default_group(kind, settings)
    consumer = Consumer(consumer_config(settings, group, **(consumer_overrides or {})))
    return SinkConsumer(
        consumer,
        list(topics) if topics is not None else default_topics(kind, settings),
        sink=sink,
        decoder=decoder,
        dead_letters=DeadLetterQueue.from_settings(settings, kind),
        metrics=metrics,
        policy=policy,
        validator=validator,
    )


def run_sink(
    runtime: Runtime,
    kind: SinkKind,
    *,
    group_id: str | None = None,
    topics: Sequence[str] | None = None,
    policy: BatchPolicy | None = None,
    sql_schema: str | None = None,
    consumer_overrides: Mapping[str, Any] | None = None,
) -> None:
    """Run one sink until ``runtime.stop`` is set: the body of ``hoststream sink``.

    Start it with :func:`hoststream.runtime.run_component`, which stops it on
    SIGTERM/SIGINT and serves its metrics. On stop the current batch is written
    and committed (within the shutdown timeout), then the consumer leaves its group.

    Args:
        runtime: the component's runtime: settings, metrics registry, stop event.
        kind: ``victoriametrics`` or ``sql``.
        group_id: the consumer group (default: :func:`default_group`).
        topics: topics or ``^`` regexes (default: :func:`default_topics`).
        policy: batch limits.
        sql_schema: ``sql`` only: the SQL schema of the tables.
        consumer_overrides: librdkafka settings over the defaults.

    Raises:
        ConfigurationError: ``kind`` is unknown, or a setting is invalid.
        SinkFatalError: the destination refuses every write (credentials, URL).
    """
    settings = runtime.settings
    loop = build_sink(
        kind,
        settings,
        registry=runtime.registry,
        group_id=group_id,
        topics=topics,
        policy=policy,
        sql_schema=sql_schema,
        consumer_overrides=consumer_overrides,
    )
    for client in loop.kafka_clients:
        runtime.follow_kafka_password(client)
    if isinstance(loop.sink, SqlSink):
        # Create the tables at once, so readers find them before the first record;
        # a database that is down now is retried by the loop like any outage.
        try:
            loop.sink.migrate()
        except SinkUnavailableError as exc:
            log.warning("schema migrations postponed: %s", exc)
    log.info("sink %s consuming %s", kind, ", ".join(topics or default_topics(kind, settings)))
    tune_for_throughput()
    loop.run(runtime.stop)

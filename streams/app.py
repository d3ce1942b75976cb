"""The Faust application: metric topics in, ``metrics.agg.<window>`` out.

:func:`build_app` wires the pieces: one agent reads every ``metrics.<family>``
topic in batches and hands them to :class:`~streams.processor.BatchProcessor`;
a timer closes the windows of quiet hosts on wall-clock time, another
reports the consumer lag of the partitions this worker owns; window states
live in a Faust table whose changelog topic lets a restarted worker (or the
one that inherits a partition) carry on where the last left off.
:func:`run_worker` is what ``hoststream stream`` runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust
from confluent_kafka.serialization import MessageField, SerializationContext
from faust.streams import Stream
from faust.types import TP

from hoststream.config import Settings
from hoststream.dead_letters import Position, Rejection, dead_letter_headers
from hoststream.errors import ConfigurationError
from hoststream.schemas import (
    AlertEvent,
    MetricEvent,
    WindowAggregate,
    codec_for,
    registry_client_for,
)
from hoststream.schemas.records import FAMILIES
from hoststream.streams._broker import broker_credentials, broker_urls
from hoststream.streams._table import SourcePartitionedTable
from hoststream.streams.aggregator import DEFAULT_GRACE_MS, WindowAggregator
from hoststream.streams.lag import ConsumerLag, measure
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.processor import BatchProcessor, SourceMessage
from hoststream.streams.rules import RuleEngine, RuleSet, load_rules
from hoststream.streams.sketch import DEFAULT_RELATIVE_ACCURACY
from hoststream.streams.topics import TABLE_NAME, prepare_topics
from hoststream.streams.windows import DEFAULT_WINDOWS, WindowSize, parse_windows
from hoststream.topics import aggregate_topic, alerts_topic, dead_letter_topic, metric_topic
from hoststream.tracing import MessageHeaders, inject_traceparent

__all__ = ["DEFAULT_APP_ID", "StreamApp", "build_app", "caught_up_partitions", "run_worker"]

log = logging.getLogger(__name__)

#: The Faust application id, after the topic prefix; also its consumer group.
DEFAULT_APP_ID = "hoststream-streams"


@dataclass(frozen=True)
class StreamApp:
    """A configured Faust application and the processor inside it."""

    app: faust.App
    processor: BatchProcessor
    windows: tuple[WindowSize, ...]
    partitions: int


def _faust_headers(headers: MessageHeaders) -> list[tuple[str, bytes]]:
    # inject_traceparent adds bytes, and the headers of consumed messages are
    # bytes from aiokafka already (or None, which it writes back as a null value).
    return cast(list[tuple[str, bytes]], headers)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigurationError(name, f"must be positive, got {value}")


def build_app(
    settings: Settings,
    *,
    app_id: str | None = None,
    windows: Sequence[str | WindowSize] = DEFAULT_WINDOWS,
    grace_s: float = DEFAULT_GRACE_MS / 1000,
    families: Sequence[str] = FAMILIES,
    batch_size: int = 1000,
    batch_within_s: float = 0.5,
    tick_s: float = 1.0,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
    rules: RuleSet | None = None,
    max_future_s: float | None = 3600.0,
    session_timeout_s: float = 30.0,
    datadir: Path | None = None,
    metrics: StreamMetrics | None = None,
    lag_interval_s: float = 5.0,
) -> StreamApp:
    """Create the topics the processor needs and configure the Faust application.

    Args:
        settings: hoststream's settings (Kafka, topic prefix, schema registry).
        app_id: Faust application id and consumer group; default
            ``<topic prefix>hoststream-streams``. Workers with the same id share
            the partitions; the window table's changelog is ``<app id>-windows-changelog``.
        windows: window sizes, e.g. ``("1m", "5m")``; each a multiple of the smallest.
        grace_s: how long after a window's end its late samples are still merged.
        families: the metric families to read, one ``metrics.<family>`` topic each.
        batch_size: at most this many messages per batch.
        batch_within_s: a batch is processed after this long even when not full.
        tick_s: how often quiet hosts are checked for windows to close on wall time.
        relative_accuracy: guaranteed relative error of the quantiles.
        rules: alert rules to evaluate on closed windows, with events to
            ``alerts``; None: no alerting (and no ``alerts`` topic).
        max_future_s: events stamped further ahead of the wall clock go to the
            dead-letter topic (a wrong host clock would stall its windows); None: no limit.
        session_timeout_s: how long the group waits for a worker that stopped
            heartbeating (killed, or hung) before its partitions move.
        datadir: Faust's working directory; default ``<state_dir>/faust/<app id>``.
        metrics: Prometheus counters; default: the process-wide ones.
        lag_interval_s: how often the consumer-lag gauge of the owned source
            partitions is refreshed.

    Raises:
        ConfigurationError: an option is invalid; the message names it.
    """
    app_id = app_id or settings.topic(DEFAULT_APP_ID)
    sizes = parse_windows(windows, "--windows")
    if grace_s < 0:
        raise ConfigurationError("--grace", f"must be 0 or more, got {grace_s}")
    _check_positive("--batch-size", batch_size)
    _check_positive("--batch-within", batch_within_s)
    _check_positive("--tick", tick_s)
    _check_positive("--session-timeout", session_timeout_s)
    _check_positive("lag_interval_s", lag_interval_s)
    if max_future_s is not None:
        _check_positive("--max-future", max_future_s)
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise ConfigurationError("--families", f"expected some of {', '.join(FAMILIES)}")

    grace_ms = round(grace_s * 1000)
    engine = None if rules is None else RuleEngine(rules, grace_ms=grace_ms)
    if engine is not None:
        missing = sorted(engine.windows_needed() - {w.ms for w in sizes})
        if missing:
            names = ", ".join(WindowSize(ms).label for ms in missing)
            raise ConfigurationError("--windows", f"the alert rules need the windows {names}")
    partitions = prepare_topics(
        settings, app_id=app_id, families=families, windows=sizes, alerts=engine is not None
    )
    workdir = datadir or settings.state_dir / "faust" / app_id
    workdir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    app = faust.App(
        app_id,
        broker=broker_urls(settings),
        broker_credentials=broker_credentials(settings),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=str(workdir),
        topic_partitions=partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=False,  # prepare_topics made them all through the admin API
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=min(3.0, session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        processing_guarantee="at_least_once",
    )
    table = SourcePartitionedTable(
        app,
        name=TABLE_NAME,
        default=None,
        partitions=partitions,
        beacon=app.tables.beacon,
        help="Open windows per (host, family), see streams.state.FamilyState.",
    )
    app.tables.add(table)
    family_of_topic = {metric_topic(settings, f): f for f in families}
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    raw |= {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(*family_of_topic, **raw)
    outputs = {size.ms: app.topic(aggregate_topic(settings, size), **raw) for size in sizes}
    dead_letters = {name: app.topic(dead_letter_topic(name), **raw) for name in family_of_topic}

    registry = registry_client_for(settings)
    decode = codec_for(settings, MetricEvent, client=registry).deserializer
    encode = codec_for(settings, WindowAggregate, client=registry).serializer
    encode_alert = codec_for(settings, AlertEvent, client=registry).serializer
    alerts_out = app.topic(alerts_topic(settings), **raw)
    aggregator = WindowAggregator(
        sizes,
        grace_ms=grace_ms,
        relative_accuracy=relative_accuracy,
        metrics=metrics,
    )

    async def emit(aggregates: Sequence[WindowAggregate], alerts: Sequence[AlertEvent]) -> None:
        # The processor calls this inside the span of the batch (or timer tick)
        # that closed these windows: each message names that span, so a sink's
        # write links back to it. With tracing off there is no header at all.
        traceparent = _faust_headers(inject_traceparent([]))

        def headers() -> list[tuple[str, bytes]] | None:
            # A list per message: Faust hands it on to hooks that may add to it in place.
            return list(traceparent) or None

        pending = []
        for aggregate in aggregates:
            topic = outputs[aggregate.window_size_ms]
            ctx = SerializationContext(topic.get_topic_name(), MessageField.VALUE)
            value = encode(aggregate, ctx)
            pending.append(
                await topic.send(key=aggregate.host.encode(), value=value, headers=headers())
            )
        for alert in alerts:
            ctx = SerializationContext(alerts_out.get_topic_name(), MessageField.VALUE)
            value = encode_alert(alert, ctx)
            pending.append(
                await alerts_out.send(key=alert.dedup_key.encode(), value=value, headers=headers())
            )
            log.info("alert %s %s: %s", alert.state.value, alert.dedup_key, alert.annotations)
        # Acknowledged before the states that no longer hold these windows are written.
        await asyncio.gather(*pending)

    async def reject(rejection: Rejection[SourceMessage]) -> None:
        message = rejection.record
        aggregator.metrics.rejected_messages.labels(message.topic).inc()
        original = getattr(message, "headers", None) or []
        # Called inside the batch's span: the dead letter's traceparent names
        # that span (which links to the producer's) instead of the original.
        headers = _faust_headers(
            dead_letter_headers(
                original.items() if isinstance(original, dict) else original,
                rejection,
                Position(message.topic, message.partition, getattr(message, "offset", -1)),
                "streams",
            )
        )
        fut = await dead_letters[message.topic].send(
            key=getattr(message, "key", None), value=message.value, headers=headers
        )
        await fut

    processor = BatchProcessor(
        aggregator,
        table,
        decode=decode,
        emit=emit,
        reject=reject,
        family_of_topic=family_of_topic,
        rules=engine,
        max_future_ms=None if max_future_s is None else round(max_future_s * 1000),
    )

    @app.agent(source, name="aggregate")
    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        # take_events is on the concrete Stream only; Faust passes one.
        batches = cast(Stream[bytes], stream).take_events(batch_size, within=batch_within_s)
        async for events in batches:
            await processor.process([event.message for event in events])

    def owned_sources() -> list[TP]:
        return sorted(
            TP(tp.topic, tp.partition)
            for tp in app.assignor.assigned_actives()
            if tp.topic in family_of_topic
        )

    @app.timer(interval=tick_s, name="close-quiet-hosts")  # type: ignore[untyped-decorator]
    async def close_quiet_hosts() -> None:
        # During a rebalance or recovery the table is incomplete: closing now
        # would emit windows whose states are about to be replaced.
        if app.rebalancing or app.in_recovery:
            return
        sources = owned_sources()
        if not sources:
            return
        try:
            highwaters = await asyncio.wait_for(app.consumer.highwaters(*sources), 5.0)
        except Exception as exc:  # no close this tick rather than a wrong one
            log.debug("quiet hosts: no high watermarks: %r", exc)
            return
        caught_up = caught_up_partitions(
            sources,
            highwaters,
            processor.next_offsets(),
            {(tp.topic, tp.partition): n for tp, n in app.monitor.tp_committed_offsets.items()},
        )
        if caught_up:
            await processor.close_quiet(caught_up)

    lag = ConsumerLag(aggregator.metrics.consumer_lag)

    @app.on_partitions_assigned.connect
    async def forget_lost_partitions(_app: object, /, *args: Any, **_: Any) -> None:
        # Sent with the new assignment, which replaces the old one: a partition
        # not in it is another worker's now, and its lag that worker's to report.
        assigned: Iterable[TP] = args[0] if args else ()
        lag.retain(tp for tp in assigned if tp.topic in family_of_topic)

    @app.timer(interval=lag_interval_s, name="consumer-lag")  # type: ignore[untyped-decorator]
    async def report_consumer_lag() -> None:
        # Positions are being reset (or the table restored, with the source
        # partitions paused); the next tick after that has the new assignment.
        if app.rebalancing or app.in_recovery:
            return
        owned = owned_sources()
        lag.retain(owned)
        # Committed by Faust since the last rebalance (its monitor clears them then).
        committed = {
            TP(tp.topic, tp.partition): offset
            for tp, offset in app.monitor.tp_committed_offsets.items()
        }
        lags = await measure(app.consumer, owned, committed)
        if app.rebalancing or app.in_recovery:
            return  # began while the broker answered: some of these may be lost already
        still = set(owned_sources())
        lag.update({tp: n for tp, n in lags.items() if tp in still})

    return StreamApp(app, processor, sizes, partitions)


def run_worker(
    settings: Settings,
    *,
    app_id: str | None = None,
    windows: Sequence[str | WindowSize] = DEFAULT_WINDOWS,
    grace_s: float = DEFAULT_GRACE_MS / 1000,
    families: Sequence[str] = FAMILIES,
    batch_size: int = 1000,
    batch_within_s: float = 0.5,
    rules_file: Path | None = None,
    alerting: bool = True,
    max_future_s: float | None = 3600.0,
    session_timeout_s: float = 30.0,
    metrics_port: int | None = None,
) -> None:
    """Run the stream processor until SIGINT or SIGTERM (``hoststream stream``).

    Args:
        settings: hoststream's settings.
        app_id: see :func:`build_app`.
        windows: see :func:`build_app`.
        grace_s: see :func:`build_app`.
        families: see :func:`build_app`.
        batch_size: see :func:`build_app`.
        batch_within_s: see :func:`build_app`.
        rules_file: alert rules (YAML); None: the default rules,
            ``streams/rules/default.yaml``.
        alerting: False: no alert rules at all.
        max_future_s: see :func:`build_app`.
        session_timeout_s: see :func:`build_app`.
        metrics_port: serve the processor's Prometheus metrics on this port
            (``/metrics``); None: not served.

    Raises:
        ConfigurationError: an option or setting is invalid.
        RuleFileError: the rule file is invalid; says at which line and why.
    """
    rules = load_rules(rules_file) if alerting else None
    stream_app = build_app(
        settings,
        app_id=app_id,
        windows=windows,
        grace_s=grace_s,
        families=families,
        batch_size=batch_size,
        batch_within_s=batch_within_s,
        session_timeout_s=session_timeout_s,
        rules=rules,
        max_future_s=max_future_s,
    )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    log.info(
        "stream processor %s: windows %s, grace %.1fs, %d partitions, %d alert rules",
        stream_app.app.conf.id,
        ", ".join(w.label for w in stream_app.windows),
        grace_s,
        stream_app.partitions,
        len(rules.rules) if rules else 0,
    )
    # Faust's worker replaces the root handlers with its own; hand it back the
    # ones hoststream configured (console or JSON) when there are any.
    handlers = list(logging.getLogger().handlers)
    if handlers:
        stream_app.app.conf.loghandlers = handlers
    worker = faust.Worker(
        stream_app.app,
        loglevel=settings.log_level,
        quiet=True,
        logging_config={"version": 1, "incremental": True} if handlers else None,
    )
    # Returns by raising SystemExit once the worker has stopped on a signal.
    worker.execute_from_commandline()


def caught_up_partitions(
    sources: Iterable[TP],
    highwaters: Mapping[TP, int],
    processed: Mapping[tuple[str, int], int],
    committed: Mapping[tuple[str, int], int],
) -> set[int]:
    """Partition numbers where every owned source partition has been read to its end.

    A host is closed on wall clock only when its silence is real: where the
    worker still has messages to read (a backlog after a restart, or lag under
    load), the host's next sample may be waiting in Kafka.
    """
    behind: set[int] = set()
    owned: set[int] = set()
    for tp in sources:
        owned.add(tp.partition)
        end = highwaters.get(tp)
        at = processed.get((tp.topic, tp.partition), committed.get((tp.topic, tp.partition)))
        if end is None or (end > 0 and (at is None or at < end)):
            behind.add(tp.partition)
    return owned - behind

"""The Faust application: metric topics in, ``metrics.agg.<window>`` out.

:func:`build_app` wires the pieces, each a small function below: one agent
reads every ``metrics.<family>`` topic in batches and hands them to
:class:`~streams.processor.BatchProcessor`, whose closed windows and alerts
:class:`_Emitter` sends and whose rejects :class:`_DeadLetters` sends; a timer
closes the windows of quiet hosts on wall-clock time, another reports the
consumer lag of the partitions this worker owns; window states live in a
Faust table whose changelog topic lets a restarted worker (or the one that
inherits a partition) carry on where the last left off. Every option is in
the settings' streams section. :func:`run_worker` is what ``hoststream stream``
runs, through :func:`hoststream.runtime.run_component`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust
from confluent_kafka.serialization import MessageField, SerializationContext
from faust.streams import Stream
from faust.types import TP
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.dead_letters import Position, Rejection, dead_letter_headers
from hoststream.errors import ConfigurationError, StreamsError
from hoststream.gc_policy import tune_for_throughput
from hoststream.replicated_schemas import writer_schema_message
from hoststream.runtime import Runtime
from hoststream.schemas import (
    AlertEvent,
    MetricEvent,
    RecordSerializer,
    WindowAggregate,
    codec_for,
    registry_client_for,
)
from hoststream.schemas.records import FAMILIES
from hoststream.schemas.validation import Validator
from hoststream.secret_files import SaslClient
from hoststream.streams._batches import take_batches
from hoststream.streams._broker import (
    broker_credentials,
    broker_urls,
    reload_client_certificate,
)
from hoststream.streams._consumer import use_lean_delivery
from hoststream.streams._monitor import LeanMonitor
from hoststream.streams._producer import AckedProducer
from hoststream.streams._raw_schema import RawSchema
from hoststream.streams._seek_hold import hold_fetching_while_seeking
from hoststream.streams._table import SourcePartitionedTable
from hoststream.streams.aggregator import ClosedWindows, WindowAggregator
from hoststream.streams.caught_up import ReadHorizon, caught_up_partitions
from hoststream.streams.encode import AggregateEncoder
from hoststream.streams.group_offsets import GroupOffsets
from hoststream.streams.lag import ConsumerLag, measure
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.processor import BatchProcessor, SourceMessage
from hoststream.streams.rules import RuleEngine, RuleSet, load_rules
from hoststream.streams.topics import TABLE_NAME, prepare_topics
from hoststream.streams.windows import WindowSize, parse_windows
from hoststream.topics import (
    aggregate_topic,
    alerts_topic,
    dead_letter_topic,
    metric_topic,
    schemas_topic,
)
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
    fatal: _Fatal


@dataclass
class _Fatal:
    """An error no restart of the agent can cure: the worker stops and exits with it."""

    error: StreamsError | None = None
    stop: Callable[[str], None] = lambda reason: None

    def __call__(self, error: StreamsError) -> None:
        if self.error is None:
            self.error = error
            log.error("error: %s", error)
            self.stop(str(error))


def _faust_headers(headers: MessageHeaders) -> list[tuple[str, bytes]]:
    # inject_traceparent adds bytes, and the headers of consumed messages are
    # bytes from aiokafka already (or None, which it writes back as a null value).
    return cast(list[tuple[str, bytes]], headers)


def _validator(settings: Settings) -> Validator:
    """The validation contract, with ``stream_max_future_s`` as its future limit when set."""
    validator = Validator.from_settings(settings)
    if settings.stream_max_future_s is None:
        return validator
    limits = dataclasses.replace(validator.limits, max_future_s=settings.stream_max_future_s)
    return Validator(limits, topic_prefix=settings.topic_prefix)


def build_app(
    settings: Settings,
    *,
    rules: RuleSet | None = None,
    metrics: StreamMetrics | None = None,
    datadir: Path | None = None,
    on_kafka_client: Callable[[SaslClient], None] | None = None,
) -> StreamApp:
    """Create the topics the processor needs and configure the Faust application.

    Every option comes from the settings' streams section (``stream_*``:
    windows, grace, families, batching, timers, ``max_future``, session
    timeout, app id). Workers with the same app id share the partitions; the
    window table's changelog is ``<app id>-windows-changelog``.

    Args:
        settings: hoststream's settings (Kafka, topic prefix, schema registry, streams).
        rules: alert rules to evaluate on closed windows, with events to
            ``alerts``; None: no alerting (and no ``alerts`` topic).
        metrics: Prometheus metrics, in the component's registry; default: a
            registry of their own (not served).
        datadir: Faust's working directory; default ``<state_dir>/faust/<app id>``.
        on_kafka_client: called with each librdkafka client of the worker's
            own (the producer of the aggregates and alerts, the admin client
            that reads partition ends and committed offsets); the runtime
            gives each a rotated SASL password.

    Raises:
        ConfigurationError: the rules need a window size that is not configured.
    """
    app_id = settings.stream_app_id or settings.topic(DEFAULT_APP_ID)
    sizes = parse_windows(settings.stream_windows, "HOSTSTREAM_STREAM_WINDOWS")
    families = settings.stream_families or FAMILIES
    grace_ms = round(settings.stream_grace_s * 1000)
    engine = _rule_engine(rules, sizes, grace_ms, settings.region)
    partitions = prepare_topics(
        settings, app_id=app_id, families=families, windows=sizes, alerts=engine is not None
    )
    app = _faust_app(settings, app_id, partitions, datadir)
    use_lean_delivery(app)
    hold_fetching_while_seeking(app)
    # One librdkafka producer for the aggregates, alerts' neighbours and the
    # table's changelog (see streams._producer).
    producer = AckedProducer(settings)
    # The wall-clock close asks it for the source partitions' ends several times a second.
    group_offsets = GroupOffsets(settings, app_id)
    if on_kafka_client is not None:
        on_kafka_client(producer.kafka_client)
        on_kafka_client(group_offsets.kafka_client)
    table = _window_table(app, partitions, producer)
    topics = _StreamTopics.declare(app, settings, families, sizes)
    aggregator = WindowAggregator(
        sizes,
        grace_ms=grace_ms,
        metrics=metrics if metrics is not None else StreamMetrics(CollectorRegistry()),
        region=settings.region,
        exact_samples=settings.stream_exact_quantile_samples,
        relative_accuracy=settings.stream_relative_accuracy,
    )
    aggregator.metrics.known_labels(
        families, list(topics.family_of_topic), [size.label for size in sizes]
    )
    registry = registry_client_for(settings)
    processor = BatchProcessor(
        aggregator,
        table,
        decode=codec_for(settings, MetricEvent, client=registry).deserializer,
        emit=_Emitter(
            topics,
            producer,
            codec_for(settings, WindowAggregate, client=registry).serializer,
            codec_for(settings, AlertEvent, client=registry).serializer,
            aggregator.metrics,
        ).emit,
        reject=_DeadLetters(topics, aggregator.metrics).reject,
        family_of_topic=topics.family_of_topic,
        rules=engine,
        validator=_validator(settings),
        stored=producer.acknowledged,
    )
    fatal = _Fatal()
    _add_aggregating_agent(app, topics, processor, settings, fatal)
    _add_quiet_host_timer(app, topics, processor, settings.stream_tick_s, group_offsets)
    _add_lag_timer(
        app,
        topics,
        processor,
        ConsumerLag(aggregator.metrics.consumer_lag),
        settings.stream_lag_interval_s,
    )
    return StreamApp(app, processor, sizes, partitions, fatal)


def _rule_engine(
    rules: RuleSet | None, sizes: Sequence[WindowSize], grace_ms: int, region: str | None
) -> RuleEngine | None:
    """The rules' engine, once the windows they need are known to be computed."""
    if rules is None:
        return None
    engine = RuleEngine(rules, grace_ms=grace_ms, region=region)
    missing = sorted(engine.windows_needed() - {w.ms for w in sizes})
    if missing:
        names = ", ".join(WindowSize(ms).label for ms in missing)
        raise ConfigurationError(
            "HOSTSTREAM_STREAM_WINDOWS", f"the alert rules need the windows {names}"
        )
    return engine


_FETCH_BYTES_PER_PARTITION = 256 * 1024
#: Aggregates librdkafka may hold unacknowledged while more are emitted:
#: about 20 MB at 2,000 hosts' closes.
_EMIT_IN_FLIGHT = 50_000


def _faust_app(settings: Settings, app_id: str, partitions: int, datadir: Path | None) -> faust.App:
    workdir = datadir or settings.state_dir / "faust" / app_id
    workdir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    session_timeout_s = settings.stream_session_timeout_s
    return faust.App(
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
        # Faust's default is 2.8 s: a crash then redoes up to that much work,
        # and the group's lag trails the worker by as much.
        broker_commit_interval=settings.stream_commit_interval_s,
        # Per partition, and a worker reads 30 or more: Faust's default of 1 MiB
        # read a backlog far ahead, a fifth of the worker's memory at 2,000 hosts,
        # while a fetch round of 256 KiB each still holds more than a batch.
        consumer_max_fetch_size=_FETCH_BYTES_PER_PARTITION,
        # Its per-message statistics feed web views and exporters the worker does not run.
        Monitor=LeanMonitor,
        # Faust's repaired Cython fast path: a stream takes an event already in
        # its queue without awaiting the channel, as its pure-Python twin does.
        cython_optimizations=True,
    )


def _window_table(
    app: faust.App, partitions: int, producer: AckedProducer
) -> SourcePartitionedTable:
    table = SourcePartitionedTable(
        app,
        producer=producer,
        name=TABLE_NAME,
        default=None,
        partitions=partitions,
        beacon=app.tables.beacon,
        help="Open windows per (host, family), see streams.state.FamilyState.",
    )
    app.tables.add(table)
    return table


@dataclass(frozen=True)
class _StreamTopics:
    """The Faust topics of one application: sources in, aggregates, alerts and dead letters out."""

    app: faust.App
    family_of_topic: dict[str, str]
    source: faust.TopicT
    outputs: dict[int, faust.TopicT]
    alerts: faust.TopicT
    dead_letters: dict[str, faust.TopicT]
    #: ``_schemas``: the writer schemas of the aggregates and alerts, for other regions.
    schemas: str

    @classmethod
    def declare(
        cls,
        app: faust.App,
        settings: Settings,
        families: Sequence[str],
        sizes: Sequence[WindowSize],
    ) -> _StreamTopics:
        family_of_topic = {metric_topic(settings, f): f for f in families}
        raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
        raw |= {"key_serializer": "raw", "value_serializer": "raw"}
        return cls(
            app,
            family_of_topic,
            # Decoded by the processor: Faust hands on the fetched bytes.
            source=app.topic(*family_of_topic, schema=RawSchema()),
            outputs={size.ms: app.topic(aggregate_topic(settings, size), **raw) for size in sizes},
            alerts=app.topic(alerts_topic(settings), **raw),
            dead_letters={
                name: app.topic(dead_letter_topic(name), **raw) for name in family_of_topic
            },
            schemas=schemas_topic(settings),
        )

    def owned_sources(self) -> list[TP]:
        """The source partitions assigned to this worker."""
        return sorted(
            TP(tp.topic, tp.partition)
            for tp in self.app.assignor.assigned_actives()
            if tp.topic in self.family_of_topic
        )


class _Emitter:
    """Sends closed windows to ``metrics.agg.<window>`` and alert events to ``alerts``.

    Window aggregates, thousands a batch, go through librdkafka
    (:mod:`streams._producer`); the few alert events through Faust.
    """

    def __init__(
        self,
        topics: _StreamTopics,
        producer: AckedProducer,
        encode: RecordSerializer[WindowAggregate],
        encode_alert: RecordSerializer[AlertEvent],
        metrics: StreamMetrics,
    ) -> None:
        self.topics = topics
        self.producer = producer
        self.output_names = {size: topic.get_topic_name() for size, topic in topics.outputs.items()}
        self.encoder = AggregateEncoder(encode, self.output_names)
        self.encode = encode
        self.encode_alert = encode_alert
        self.metrics = metrics
        # Topics whose writer schema is in _schemas already (by this worker).
        self.schemas_sent: set[str] = set()

    def send_schema(self, topic: str, serializer: RecordSerializer[Any]) -> None:
        """Write the writer schema of ``topic``'s records to ``_schemas``, once per topic.

        Other regions decode this region's mirrored records with it
        (:mod:`hoststream.replicated_schemas`): their registries give the same
        id to another schema, or to none. Single-object encoding needs nothing.
        """
        message = writer_schema_message(serializer, topic)
        if message is not None:
            self.producer.produce(self.topics.schemas, *message, None)
        self.schemas_sent.add(topic)

    async def emit(self, closed: ClosedWindows, alerts: Sequence[AlertEvent]) -> None:
        # The processor calls this inside the span of the batch (or timer tick)
        # that closed these windows: each message names that span, so a sink's
        # write links back to it. With tracing off there is no header at all.
        traceparent = _faust_headers(inject_traceparent([]))

        def headers() -> list[tuple[str, bytes]] | None:
            # A list per message: Faust hands it on to hooks that may add to it in place.
            return list(traceparent) or None

        # librdkafka copies the headers it is given: one list serves every aggregate.
        aggregate_headers = headers()
        pending = []
        names = self.output_names
        for size_ms, key, value in self.encoder.each(closed):
            if names[size_ms] not in self.schemas_sent:
                self.send_schema(names[size_ms], self.encode)
            self.producer.produce(names[size_ms], key, value, aggregate_headers)
        alerts_out = self.topics.alerts
        for alert in alerts:
            ctx = SerializationContext(alerts_out.get_topic_name(), MessageField.VALUE)
            if ctx.topic not in self.schemas_sent:
                self.send_schema(ctx.topic, self.encode_alert)
            value = self.encode_alert(alert, ctx)
            pending.append(
                await alerts_out.send(key=alert.dedup_key.encode(), value=value, headers=headers())
            )
            log.info("alert %s %s: %s", alert.state.value, alert.dedup_key, alert.annotations)
            self.metrics.alerts.labels(alert.state.value.lower()).inc()
        # Acknowledged by the processor's ``stored`` before the states that no
        # longer hold these windows are written; here only kept from piling up
        # in librdkafka's queue while a burst of closes is reduced slice by slice.
        await self.producer.settled(_EMIT_IN_FLIGHT)
        await asyncio.gather(*pending)


class _DeadLetters:
    """Sends a message that cannot be aggregated to ``<source topic>.dlq``, saying why."""

    def __init__(self, topics: _StreamTopics, metrics: StreamMetrics) -> None:
        self.topics = topics
        self.metrics = metrics

    async def reject(self, rejection: Rejection[SourceMessage]) -> None:
        message = rejection.record
        self.metrics.rejected_messages.labels(message.topic).inc()
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
        fut = await self.topics.dead_letters[message.topic].send(
            key=getattr(message, "key", None), value=message.value, headers=headers
        )
        await fut


def _add_aggregating_agent(
    app: faust.App,
    topics: _StreamTopics,
    processor: BatchProcessor,
    settings: Settings,
    fatal: _Fatal,
) -> None:
    batch_size, within_s = settings.stream_batch_size, settings.stream_batch_within_s

    @app.agent(topics.source, name="aggregate")
    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        # Faust passes the concrete Stream, whose processors take_batches uses.
        batches = take_batches(cast(Stream[bytes], stream), batch_size, within_s)
        async for events in batches:
            try:
                await processor.process([event.message for event in events])
            except StreamsError as exc:
                # A table this version cannot read: restarting the agent would
                # fail the same way, so the worker stops and says why.
                fatal(exc)
                return


#: How often the wall-clock closer looks whether a partition has come due:
#: a window is emitted at most about this long after it may close. A look
#: that finds nothing due reads a few dictionaries and asks Kafka nothing.
_LOOK_EVERY_S = 0.1
#: The least time between two high-watermark requests made because states
#: came due (the periodic pass makes one every ``HOSTSTREAM_STREAM_TICK_S``).
_MARK_EVERY_MS = 200


def _add_quiet_host_timer(
    app: faust.App,
    topics: _StreamTopics,
    processor: BatchProcessor,
    tick_s: float,
    group_offsets: GroupOffsets,
) -> None:
    closer = _WallClockCloser(app, topics, processor, tick_s, group_offsets)

    @app.task  # type: ignore[untyped-decorator]
    async def close_quiet_hosts() -> None:
        # A task looking often, not a timer of tick_s: see _WallClockCloser.
        await app.sleep(tick_s)  # as a Faust timer waits before its first run
        while not app.should_stop:
            await closer.look()
            await app.sleep(_LOOK_EVERY_S)


class _WallClockCloser:
    """Closes windows on wall-clock time where the worker has read its partitions.

    Every ``tick_s`` it passes over every owned partition read to its end (nodata
    rules, expired states, states taken over in a rebalance), as a timer of that
    period would. In between it looks every :data:`_LOOK_EVERY_S` whether a
    partition has states come due (:meth:`BatchProcessor.due_ms`); once one has,
    it asks for the partitions' ends (a mark of :class:`ReadHorizon`) and closes
    the partition as soon as the worker has read to that mark, judging its
    states at the mark's time. So a window closes within a few tenths of a
    second of its end plus grace (plus its host's lag), under steady input too,
    when a partition is never read to its very end at the instant of a look.
    """

    def __init__(
        self,
        app: faust.App,
        topics: _StreamTopics,
        processor: BatchProcessor,
        tick_s: float,
        group_offsets: GroupOffsets,
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        """Wire the closer; ``clock_ms`` (wall-clock milliseconds) is for tests to fake."""
        self._app = app
        self._clock_ms = clock_ms or _wall_ms
        self._topics = topics
        self._processor = processor
        self._tick_ms = round(tick_s * 1000)
        self._group_offsets = group_offsets
        self._horizon = ReadHorizon()
        self._sources: list[TP] = []
        # Committed offsets read from the group for partitions taken over with
        # neither processing nor a commit of this worker's: where it starts.
        self._taken_over: dict[tuple[str, int], int] = {}
        self._pass_at = 0  # wall ms of the next pass over every partition
        self._asked_at = 0  # wall ms of the last request for the partitions' ends

    async def look(self) -> None:
        """Close what is due (and, every ``tick_s``, pass over every partition read)."""
        app = self._app
        # During a rebalance or recovery the table is incomplete: closing now
        # would emit windows whose states are about to be replaced.
        if app.rebalancing or app.in_recovery:
            return
        sources = self._topics.owned_sources()
        if sources != self._sources:
            # Marks and offsets of another assignment tell nothing of this one.
            self._sources = sources
            self._horizon.forget()
            self._taken_over.clear()
            self._pass_at = 0
        if not sources:
            return
        now = self._clock_ms()
        due = self._processor.due_ms()
        # A partition the processor knows nothing of may hold states: due now.
        came_due = [due.get(p, now) for p in {tp.partition for tp in sources}]
        came_due = [at for at in came_due if at <= now]
        periodic = now >= self._pass_at
        latest = self._horizon.latest_ms
        # Only a mark taken once a state is due can let it close.
        needs_mark = bool(came_due) and (latest is None or latest < max(came_due))
        if periodic:
            self._pass_at = now + self._tick_ms
        if periodic or (needs_mark and now - self._asked_at >= _MARK_EVERY_MS):
            self._asked_at = now
            if not await self._mark(sources, ask_group=periodic):
                return
        read_until = self._horizon.read_until(
            sources, self._processor.next_offsets(), {**self._taken_over, **self._committed()}
        )
        if app.rebalancing or app.in_recovery:
            return  # began while Kafka answered
        if periodic or any(p not in due or due[p] <= at for p, at in read_until.items()):
            await self._processor.close_quiet(
                read_until.keys(), read_until=read_until, due_only=not periodic
            )

    def _committed(self) -> dict[tuple[str, int], int]:
        # Committed by Faust since the last rebalance (its monitor clears them then).
        committed = self._app.monitor.tp_committed_offsets
        return {(tp.topic, tp.partition): n for tp, n in committed.items()}

    async def _mark(self, sources: list[TP], *, ask_group: bool) -> bool:
        """Note the partitions' ends as of now; False if they could not be read.

        With ``ask_group``, the group's committed offsets are read for the
        partitions this worker has neither processed nor committed in.
        """
        app = self._app
        at = self._clock_ms()  # before asking: the ends hold at least what was there then
        highwaters = await asyncio.to_thread(self._group_offsets.ends, sources)
        if not highwaters:
            return False  # no close this time rather than a wrong one
        processed = self._processor.next_offsets()
        committed = self._committed()
        unknown = [
            tp
            for tp in sources
            if (tp.topic, tp.partition) not in processed
            and (tp.topic, tp.partition) not in committed
            and highwaters.get(tp, 0) > 0
        ]
        if unknown and ask_group:
            # Taken over already read to the end, or not read yet: the group knows which.
            self._taken_over.update(await asyncio.to_thread(self._group_offsets.committed, unknown))
            if app.rebalancing or app.in_recovery:
                return False  # began while the broker answered
        self._horizon.mark(at, highwaters)
        return True


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _add_lag_timer(
    app: faust.App,
    topics: _StreamTopics,
    processor: BatchProcessor,
    lag: ConsumerLag,
    interval_s: float,
) -> None:
    @app.on_partitions_assigned.connect
    async def forget_lost_partitions(_app: object, /, *args: Any, **_: Any) -> None:
        # Sent with the new assignment, which replaces the old one: a partition
        # not in it is another worker's now, and its lag that worker's to report.
        assigned: Iterable[TP] = args[0] if args else ()
        lag.retain(tp for tp in assigned if tp.topic in topics.family_of_topic)

    @app.timer(interval=interval_s, name="consumer-lag")  # type: ignore[untyped-decorator]
    async def report_consumer_lag() -> None:
        # Positions are being reset (or the table restored, with the source
        # partitions paused); the next tick after that has the new assignment.
        if app.rebalancing or app.in_recovery:
            return
        owned = topics.owned_sources()
        lag.retain(owned)
        # Committed by Faust since the last rebalance (its monitor clears them then);
        # before the first commit, what the worker has processed: its fetch position
        # runs ahead by everything prefetched, and a burst fetched but not yet
        # processed is a backlog all the same.
        read = {TP(topic, part): n for (topic, part), n in processor.next_offsets().items()}
        committed = {
            TP(tp.topic, tp.partition): offset
            for tp, offset in app.monitor.tp_committed_offsets.items()
        }
        lags = await measure(app.consumer, owned, {**read, **committed})
        if app.rebalancing or app.in_recovery:
            return  # began while the broker answered: some of these may be lost already
        still = set(topics.owned_sources())
        lag.update({tp: n for tp, n in lags.items() if tp in still})


class _Worker(faust.Worker):
    """Faust's worker, stopped by the component runtime instead of its own signal handlers."""

    def __init__(self, runtime: Runtime, app: faust.App, **options: Any) -> None:
        super().__init__(app, **options)
        self._runtime = runtime
        # Faust's terminal spinner, installed whenever the level is WARNING or
        # above, sets the root logger to DEBUG so it can spin on every record:
        # every debug line of Faust and aiokafka (one per message sent) would
        # then be built and handed to the OTLP log handler, which has no level.
        self.spinner = None

    def install_signal_handlers(self) -> None:
        # SIGTERM/SIGINT belong to the runtime; it may call this from its
        # handler, so the stop is only scheduled on the worker's loop.
        def stop() -> None:
            self.loop.call_soon_threadsafe(self._on_sigterm)

        self._runtime.on_stop(stop)


def run_worker(runtime: Runtime) -> None:
    """Run the stream processor until the runtime stops it: the body of ``hoststream stream``.

    Start it with :func:`hoststream.runtime.run_component`. The alert rules are
    the settings' ``stream_rules_file`` (default ``streams/rules/default.yaml``),
    or none with ``stream_alerts`` off.

    Raises:
        ConfigurationError: an option or setting is invalid.
        RuleFileError: the rule file is invalid; says at which line and why.
    """
    settings = runtime.settings
    rules = load_rules(settings.stream_rules_file) if settings.stream_alerts else None
    stream_app = build_app(
        settings,
        rules=rules,
        metrics=StreamMetrics(runtime.registry),
        on_kafka_client=runtime.follow_kafka_password,
    )
    log.info(
        "stream processor %s: windows %s, grace %.1fs, %d partitions, %d alert rules",
        stream_app.app.conf.id,
        ", ".join(w.label for w in stream_app.windows),
        settings.stream_grace_s,
        stream_app.partitions,
        len(rules.rules) if rules else 0,
    )
    if runtime.certificates is not None:
        credentials = stream_app.app.conf.broker_credentials

        def reload_certificate(setting: str) -> None:
            if setting == "HOSTSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION":
                reload_client_certificate(credentials, settings)

        runtime.certificates.on_rotation(reload_certificate)
    # Faust's worker replaces the root handlers with its own; hand it back the
    # ones hoststream configured (console or JSON) when there are any.
    handlers = list(logging.getLogger().handlers)
    if handlers:
        stream_app.app.conf.loghandlers = handlers
    worker = _Worker(
        runtime,
        stream_app.app,
        loglevel=settings.log_level,
        quiet=True,
        logging_config={"version": 1, "incremental": True} if handlers else None,
    )
    stream_app.fatal.stop = runtime.request_stop
    tune_for_throughput()
    # Returns by raising SystemExit once the worker has stopped.
    try:
        worker.execute_from_commandline()
    finally:
        if stream_app.fatal.error is not None:
            raise stream_app.fatal.error

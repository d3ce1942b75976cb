"""Publishes metric events to Kafka without ever blocking the collector.

librdkafka's local queue is the bounded buffer: while the brokers are away,
events wait there (``message.timeout.ms=0``: no expiry), and once it is full
new events are dropped and counted rather than growing memory. Logging of
drops and failures is summarised once per interval, not once per event.

Every event is validated before it is sent (:mod:`hoststream.schemas.validation`):
an invalid sample is dropped, counted and summarised in the log, and the rest
of its event goes on; an event whose host id or host labels are invalid is not
sent at all. Consumers would dead-letter what this leaves out.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client import CollectorRegistry, Counter, Gauge

from hoststream.kafka import producer_config
from hoststream.producers.acknowledgements import InOrderAcknowledgements, QueuedRun
from hoststream.schemas.records import EventBatch, EventValues, MetricEvent, MetricKind
from hoststream.schemas.validation import Validator, Violation
from hoststream.topics import metric_topic
from hoststream.tracing import MessageHeaders

if TYPE_CHECKING:
    # Annotations only: the agent process runs without the settings' pydantic models.
    from hoststream.config import Settings
    from hoststream.schemas._batch import BatchImage

__all__ = ["BatchSerializer", "EventPublisher", "PublisherMetrics"]

log = logging.getLogger(__name__)

Serializer = Callable[[Any, SerializationContext], bytes]
DeliveryCallback = Callable[[KafkaError | None, Message], None]
#: Messages produced between two polls for delivery reports.
_POLL_EVERY = 32


@runtime_checkable
class ValuesSerializer(Protocol):
    """A serializer that also writes an :class:`EventValues` without building its event."""

    def encode_values(self, values: EventValues, ctx: SerializationContext | None = None) -> bytes:
        """What the serializer gives for ``values.event()``."""
        ...


@runtime_checkable
class BatchSerializer(Protocol):
    """A serializer that also writes an :class:`EventBatch` into one laid-out buffer."""

    def batch_image(
        self, templates: Sequence[MetricEvent], contexts: Sequence[SerializationContext]
    ) -> BatchImage | None:
        """The image of the templates' events (None until each template's layout is known)."""
        ...


class _BatchPlan:
    """What a batch of known templates needs each tick: its image, topics, keys, callbacks.

    Every template of the batch passed the full validation once, so, as for
    :class:`_Template`, only the values are left to check, all at once.
    """

    __slots__ = (
        "_laid_out",
        "_messages",
        "callbacks",
        "counters",
        "families",
        "image",
        "keys",
        "run",
        "templates",
        "topics",
    )

    def __init__(
        self,
        templates: tuple[MetricEvent, ...],
        image: BatchImage,
        topics: list[str],
        callbacks: list[DeliveryCallback],
    ) -> None:
        import numpy as np  # the simulated fleet's path only: the agent never imports NumPy

        self.templates = templates
        self.image = image
        self.topics = topics
        self.keys = [t.host.encode() for t in templates]
        self.families = [t.family for t in templates]
        self.callbacks = callbacks
        ends = image.value_ends
        self.run = QueuedRun(self.families, [e - s for s, e in zip([0, *ends], ends, strict=False)])
        self._laid_out: list[int] | None = None
        self._messages: tuple[tuple[str, bytes, DeliveryCallback, int, int], ...] = ()
        kinds = [s.kind is MetricKind.COUNTER for t in templates for s in t.samples]
        self.counters = np.flatnonzero(np.asarray(kinds, dtype=bool))

    def messages(self) -> tuple[tuple[str, bytes, DeliveryCallback, int, int], ...]:
        """Per message: (topic, key, delivery callback, start and end in the image's buffer).

        Read after :meth:`BatchImage.write`: the image lays its messages out
        anew when a sequence number's varint grows a byte.
        """
        starts = self.image.starts
        if starts is not self._laid_out:
            self._laid_out = starts
            self._messages = tuple(
                zip(self.topics, self.keys, self.callbacks, starts, self.image.ends, strict=True)
            )
        return self._messages

    def values_valid(self, batch: EventBatch) -> bool:
        """Every value finite and no counter negative: what :class:`_Template` checks."""
        import numpy as np

        values = batch.values
        if list(batch.ends) != self.image.value_ends:
            return False
        return bool(np.isfinite(values).all()) and not (values[self.counters] < 0).any()


class _Template:
    """What a template's first clean event proved: its names, labels and host are valid.

    Later events of the template differ only in their instant, sequence number
    and values, so only the values' rules are left to check: finite, and
    counters not negative.
    """

    __slots__ = ("counters",)

    def __init__(self, template: MetricEvent) -> None:
        at = [i for i, s in enumerate(template.samples) if s.kind is MetricKind.COUNTER]
        # itemgetter of one index gives a value, of more a tuple: min() wants a sequence.
        self.counters: Callable[[Sequence[float]], Any] | None = (
            None
            if not at
            else (lambda values, i=at[0]: (values[i],))
            if len(at) == 1
            else itemgetter(*at)
        )

    def values_valid(self, values: Sequence[float]) -> bool:
        # A sum is finite only if every term is (an overflow to inf only sends
        # the event down the full check); NaN and inf propagate.
        if not math.isfinite(sum(values)):
            return False
        return self.counters is None or min(self.counters(values)) >= 0


class PublisherMetrics:
    """The producer's Prometheus metrics.

    Args:
        registry: where to register (the component runtime's).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.produced = Counter(
            "hoststream_producer_events_total",
            "Metric events acknowledged by Kafka.",
            ["family"],
            registry=registry,
        )
        self.samples = Counter(
            "hoststream_producer_samples_total",
            "Samples in the metric events Kafka acknowledged.",
            ["family"],
            registry=registry,
        )
        self.dropped = Counter(
            "hoststream_producer_events_dropped_total",
            "Metric events dropped because the local buffer was full.",
            ["family"],
            registry=registry,
        )
        self.failed = Counter(
            "hoststream_producer_delivery_failures_total",
            "Metric events Kafka did not acknowledge.",
            ["family", "error"],
            registry=registry,
        )
        self.invalid_samples = Counter(
            "hoststream_producer_invalid_samples_total",
            "Samples not sent because they break the validation contract, by rule broken.",
            ["family", "error"],
            registry=registry,
        )
        self.buffered = Gauge(
            "hoststream_producer_buffered_events",
            "Events waiting in the local buffer for Kafka's acknowledgement.",
            registry=registry,
        )

    def known_families(self, families: Sequence[str]) -> None:
        """Create each family's series at zero, so dashboards show 0, not "No data"."""
        for family in families:
            for counter in (self.produced, self.samples, self.dropped):
                counter.labels(family)


class EventPublisher:
    """Serialises :class:`MetricEvent` objects and produces them, keyed by host.

    Args:
        settings: Kafka address, security and buffer size.
        serializer: turns an event into the value bytes (a codec from :mod:`schemas`).
        metrics: where to count produced, dropped and failed events.
        producer: a ready producer; by default one built from ``settings``.
        validator: the validation contract; by default the settings' limits.
        event_timestamps: give each message its event's instant as its Kafka
            timestamp. False: the instant it is produced, for a simulation that
            runs ahead of the wall clock (``--speedup``): brokers reject
            timestamps more than ``log.message.timestamp.after.max.ms`` (an
            hour by default since Kafka 4.0) ahead of their clock. The event's
            own ``timestamp_ms`` is the same either way.
        error_reports_only: librdkafka reports only failed deliveries
            (``delivery.report.only.error``): acknowledged events and samples are
            counted from what is left in its queue
            (:class:`~producers.acknowledgements.InOrderAcknowledgements`),
            which saves a Python call per message. For a fleet sending
            thousands of messages a second; ``producer``, if given, must be
            configured so too.
    """

    def __init__(
        self,
        settings: Settings,
        serializer: Serializer,
        metrics: PublisherMetrics | None = None,
        producer: Producer | None = None,
        summary_interval_s: float = 10.0,
        *,
        validator: Validator | None = None,
        event_timestamps: bool = True,
        error_reports_only: bool = False,
    ) -> None:
        self._settings = settings
        self._validator = validator if validator is not None else Validator.from_settings(settings)
        self._serializer = serializer
        self._event_timestamps = event_timestamps
        self.metrics = metrics or PublisherMetrics(CollectorRegistry())
        # Not `producer or ...`: an empty producer is falsy (len() counts its queue).
        self._producer = (
            producer
            if producer is not None
            else Producer(
                producer_config(
                    settings,
                    **{
                        "message.timeout.ms": 0,
                        "error_cb": self._on_error,
                        # A host's batch is a few kB: zstd's default level (3)
                        # builds a context several times larger for each one.
                        "compression.level": 1,
                        **({"delivery.report.only.error": True} if error_reports_only else {}),
                    },
                )
            )
        )
        self._topics: dict[str, str] = {}
        self._contexts: dict[str, SerializationContext] = {}
        self._values_serializer = serializer if isinstance(serializer, ValuesSerializer) else None
        self._batch_serializer = serializer if isinstance(serializer, BatchSerializer) else None
        # id(templates) -> the plan of batches of those templates (it keeps the tuple alive).
        self._batches: dict[int, _BatchPlan] = {}
        # id(template) -> (template, what its first clean event proved); the
        # template is kept so that its id is not reused by another object.
        self._templates: dict[int, tuple[MetricEvent, _Template]] = {}
        # (family, samples) -> the delivery callback: one closure per shape, not per message.
        self._callbacks: dict[tuple[str, int], DeliveryCallback] = {}
        # Messages queued since delivery reports were last served.
        self._unpolled = 0
        self._summary_interval_s = summary_interval_s
        self._lock = threading.Lock()
        self._dropped_since_summary = 0
        self._failed_since_summary = 0
        self._last_error: str | None = None
        self._invalid_since_summary = 0
        self._last_invalid: Violation | None = None
        self._last_summary = time.monotonic()
        # Events (and their samples) Kafka acknowledged, each reported.
        self._acknowledged = 0
        self._acknowledged_samples = 0
        # Or, with reports of failures only, counted from what librdkafka has left.
        self._in_order = (
            InOrderAcknowledgements(self.metrics.produced, self.metrics.samples)
            if error_reports_only
            else None
        )
        #: Events Kafka did not acknowledge.
        self.failed = 0
        #: Samples never sent because they were invalid, and events of which none was left.
        self.invalid_samples = 0
        self.invalid_events = 0

    @property
    def acknowledged(self) -> int:
        """Events Kafka acknowledged so far."""
        if self._in_order is None:
            return self._acknowledged
        self._in_order.settle(len(self._producer))
        return self._in_order.acknowledged

    @property
    def acknowledged_samples(self) -> int:
        """Samples of the events Kafka acknowledged so far."""
        if self._in_order is None:
            return self._acknowledged_samples
        self._in_order.settle(len(self._producer))
        return self._in_order.acknowledged_samples

    @property
    def kafka_client(self) -> Producer:
        """The librdkafka producer (to give it a rotated SASL password)."""
        return self._producer

    def _topic(self, family: str) -> str:
        topic = self._topics.get(family)
        if topic is None:
            topic = self._topics[family] = metric_topic(self._settings, family)
        return topic

    def publish(self, event: MetricEvent, headers: MessageHeaders | None = None) -> bool:
        """Queue one event's valid samples; False only if the buffer was full and it was dropped.

        Invalid samples (or a whole event with an invalid host id or host
        labels) are not sent; they are counted in :attr:`invalid_samples` and
        the log's summary, and True is returned: retrying cannot help.

        Args:
            event: the event; its host id is the message key.
            headers: message headers, such as the ``traceparent`` of the batch
                span (:func:`hoststream.tracing.inject_traceparent`); None: none.
        """
        topic = self._topic(event.family)
        valid = self._valid(event, topic)
        if valid is None:
            return True
        value = self._serializer(valid, self._context(topic))
        return self._produce(
            topic,
            valid,
            value,
            timestamp_ms=valid.timestamp_ms,
            samples=len(valid.samples),
            headers=headers,
        )

    def publish_values(self, values: EventValues, headers: MessageHeaders | None = None) -> bool:
        """:meth:`publish` of ``values.event()``, without building it when that is safe.

        The first event of a template takes the full path (validation, then the
        serializer learns its layout); once one was entirely valid, later events
        of the same template object only have their values checked and are
        written by layout. Any event with a value that breaks a rule takes the
        full path, so what is sent and counted is what :meth:`publish` would do.
        """
        template = values.template
        known = self._templates.get(id(template))
        serializer = self._values_serializer
        if (
            known is None
            or serializer is None
            or known[0] is not template
            or len(values.values) != len(template.samples)
            or not known[1].values_valid(values.values)
        ):
            event = values.event()
            invalid_before = self.invalid_samples
            sent = self.publish(event, headers)
            if self.invalid_samples == invalid_before and known is None:
                if len(self._templates) >= 1_000_000:
                    self._templates.clear()
                self._templates[id(template)] = (template, _Template(template))
            return sent
        topic = self._topic(template.family)
        value = serializer.encode_values(values, self._context(topic))
        return self._produce(
            topic,
            template,
            value,
            timestamp_ms=values.timestamp_ms,
            samples=len(values.values),
            headers=headers,
        )

    def publish_batch(
        self, batch: EventBatch, headers: MessageHeaders | None = None
    ) -> tuple[int, int, int]:
        """:meth:`publish_values` of each event of ``batch``, written and checked at once.

        Once every template of the batch went through :meth:`publish_values`
        cleanly (the first tick does), the batch's messages are written into
        one buffer laid out once and its values checked in one pass; any value
        that breaks a rule sends the whole batch event by event, so what is
        sent and counted is what :meth:`publish` would do.

        Returns:
            (events queued, events dropped because the buffer was full,
            samples of the events queued).
        """
        plan = self._batches.get(id(batch.templates))
        if plan is None or plan.templates is not batch.templates:
            plan = self._batch_plan(batch.templates)
        if plan is None or not plan.values_valid(batch):
            return self._publish_each(batch, headers)
        data = plan.image.write(batch)
        timestamp = batch.timestamp_ms if self._event_timestamps else 0
        produce = self._producer.produce
        dropped_at: list[int] = []
        for index, (topic, key, callback, begin, end) in enumerate(plan.messages()):
            try:
                # Positional: confluent-kafka parses keywords at a cost per call.
                # (topic, value, key, partition: the partitioner's, callback,
                # on_delivery, timestamp, headers)
                produce(topic, data[begin:end], key, -1, callback, None, timestamp, headers)
            except BufferError:
                dropped_at.append(index)
                self.metrics.dropped.labels(plan.families[index]).inc()
                with self._lock:
                    self._dropped_since_summary += 1
                self._producer.poll(0)
        dropped = len(dropped_at)
        sent = len(plan.templates) - dropped
        run = plan.run
        samples = plan.image.value_ends[-1]
        if dropped_at:
            gone = set(dropped_at)
            kept = [i for i in range(len(run)) if i not in gone]
            run = QueuedRun([run.families[i] for i in kept], [run.samples[i] for i in kept])
            samples = sum(run.samples)
        if self._in_order is not None:
            self._in_order.queue(run)
        self._producer.poll(0)
        return sent, dropped, samples

    def _publish_each(
        self, batch: EventBatch, headers: MessageHeaders | None
    ) -> tuple[int, int, int]:
        sent = dropped = samples = 0
        for values in batch.event_values():
            if self.publish_values(values, headers):
                sent += 1
                samples += len(values.values)
            else:
                dropped += 1
        return sent, dropped, samples

    def _batch_plan(self, templates: tuple[MetricEvent, ...]) -> _BatchPlan | None:
        """The plan of batches of ``templates``; None while one is not known valid yet."""
        serializer = self._batch_serializer
        if serializer is None or not templates:
            return None
        known = self._templates
        for template in templates:
            entry = known.get(id(template))
            if entry is None or entry[0] is not template:
                return None
        topics = [self._topic(t.family) for t in templates]
        image = serializer.batch_image(templates, [self._context(topic) for topic in topics])
        if image is None:
            return None
        callbacks = [self._callback(t.family, len(t.samples)) for t in templates]
        if len(self._batches) >= 10_000:
            self._batches.clear()
        plan = self._batches[id(templates)] = _BatchPlan(templates, image, topics, callbacks)
        return plan

    def _callback(self, family: str, samples: int) -> DeliveryCallback:
        callback = self._callbacks.get((family, samples))
        if callback is None:
            callback = self._callbacks[(family, samples)] = self._delivery_callback(family, samples)
        return callback

    def _context(self, topic: str) -> SerializationContext:
        ctx = self._contexts.get(topic)
        if ctx is None:
            ctx = self._contexts[topic] = SerializationContext(topic, MessageField.VALUE)
        return ctx

    def _produce(
        self,
        topic: str,
        event: MetricEvent,
        value: bytes,
        *,
        timestamp_ms: int,
        samples: int,
        headers: MessageHeaders | None,
    ) -> bool:
        """Queue ``value`` keyed by ``event``'s host (an event or its template) and count it."""
        family = event.family
        callback = self._callback(family, samples)
        try:
            self._producer.produce(
                topic,
                key=event.host.encode(),
                value=value,
                # 0: librdkafka stamps the message when it is produced.
                timestamp=timestamp_ms if self._event_timestamps else 0,
                headers=headers,
                on_delivery=callback,
            )
        except BufferError:
            self.metrics.dropped.labels(family).inc()
            with self._lock:
                self._dropped_since_summary += 1
            self._producer.poll(0)
            return False
        if self._in_order is not None:
            self._in_order.queue(QueuedRun((family,), (samples,)))
        # Serving delivery reports costs a call into librdkafka whether or not
        # any is ready: once every few messages is enough to keep up.
        self._unpolled += 1
        if self._unpolled >= _POLL_EVERY:
            self._unpolled = 0
            self._producer.poll(0)
        return True

    def _delivery_callback(self, family: str, samples: int) -> DeliveryCallback:
        # The family's counters are looked up once: labels() costs a lock and a tuple.
        produced = self.metrics.produced.labels(family)
        produced_samples = self.metrics.samples.labels(family)

        in_order = self._in_order

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                produced.inc()
                produced_samples.inc(samples)
                self._acknowledged += 1
                self._acknowledged_samples += samples
            else:
                if in_order is not None:
                    in_order.fail(family, samples)
                self._on_failure(family, err)

        return delivered

    def _valid(self, event: MetricEvent, topic: str) -> MetricEvent | None:
        """``event`` without its invalid samples; None when nothing of it may be sent."""
        # The producer's own clock stamped the event: no time window to check here.
        whole = self._validator.check_event_fields(event, topic, now_ms=event.timestamp_ms)
        if whole is not None:
            violations = [whole] * max(1, len(event.samples))
            kept: MetricEvent | None = None
        else:
            checked, violations = self._validator.valid_samples(event)
            kept = checked if checked.samples or not event.samples else None
        if violations:
            for violation in violations:
                self.metrics.invalid_samples.labels(event.family, violation.error).inc()
            self.invalid_samples += len(violations)
            self.invalid_events += kept is None
            with self._lock:
                self._invalid_since_summary += len(violations)
                self._last_invalid = violations[-1]
        return kept

    def _on_failure(self, family: str, err: KafkaError) -> None:
        self.failed += 1
        self.metrics.failed.labels(family, err.name()).inc()
        with self._lock:
            self._failed_since_summary += 1
            self._last_error = err.str()

    def _on_error(self, err: KafkaError) -> None:
        # Broker-down errors repeat every few seconds; they go into the summary.
        with self._lock:
            self._last_error = err.str()

    def service(self) -> None:
        """Serve delivery callbacks and log the interval's summary if one is due."""
        self._producer.poll(0)
        buffered = len(self._producer)
        if self._in_order is not None:
            self._in_order.settle(buffered)
        self.metrics.buffered.set(buffered)
        now = time.monotonic()
        if now - self._last_summary < self._summary_interval_s:
            return
        with self._lock:
            dropped, failed = self._dropped_since_summary, self._failed_since_summary
            error = self._last_error
            invalid, last_invalid = self._invalid_since_summary, self._last_invalid
            self._dropped_since_summary = self._failed_since_summary = 0
            self._invalid_since_summary = 0
            self._last_error = None
            self._last_invalid = None
            self._last_summary = now
        if invalid and last_invalid is not None:
            log.warning(
                "last %.0fs: %d invalid sample(s) not sent; last: %s: %s",
                self._summary_interval_s,
                invalid,
                last_invalid.error,
                last_invalid.reason,
            )
        if dropped or failed or error:
            log.warning(
                "last %.0fs: %d event(s) dropped (buffer full), %d delivery failure(s), "
                "%d buffered; last Kafka error: %s",
                self._summary_interval_s,
                dropped,
                failed,
                len(self._producer),
                error or "none",
            )

    def buffered(self) -> int:
        return len(self._producer)

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every buffered event; return how many remain."""
        remaining: int = self._producer.flush(timeout_s)
        if self._in_order is not None:
            self._in_order.settle(remaining)
        self.metrics.buffered.set(remaining)
        return remaining

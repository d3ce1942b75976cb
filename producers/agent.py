"""The producer's main loop: collect at each aligned tick, publish, flush on exit."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from opentelemetry.trace import SpanKind, Tracer

from hoststream.kafka import TopicSpec, ensure_topics
from hoststream.producers.collectors import (
    DEFAULT_DISK_DEVICE_EXCLUDE,
    DEFAULT_FS_TYPES_EXCLUDE,
    DEFAULT_MOUNT_POINTS_EXCLUDE,
    Collector,
    HostSource,
    default_collectors,
)
from hoststream.producers.publisher import EventPublisher
from hoststream.producers.scheduler import AlignedTicker
from hoststream.schemas.records import EventBatch, EventValues, MetricEvent
from hoststream.topics import metric_topic
from hoststream.tracing import inject_traceparent

if TYPE_CHECKING:
    # Annotations only: the agent process runs without the settings' pydantic models.
    from hoststream.config import Settings

__all__ = [
    "COLLECT_SPAN",
    "PRODUCE_SPAN",
    "EventSource",
    "HostEvents",
    "ProducerReport",
    "collectors_for",
    "create_metric_topics",
    "run_producer",
]

log = logging.getLogger(__name__)

#: The span of one tick: collecting and queueing every event of one instant.
#: Each message of the tick carries its ``traceparent``.
PRODUCE_SPAN = "produce metrics"
#: The child span of collecting (or simulating) the tick's events.
COLLECT_SPAN = "collect"
#: A paced tick checks its schedule every this many events.
_PACE_EVERY = 200


class EventSource(Protocol):
    """Whatever yields the metric events of one collection instant."""

    @property
    def families(self) -> Sequence[str]: ...

    def events(
        self, timestamp_ms: int, interval_ms: int
    ) -> Iterable[MetricEvent | EventValues | EventBatch]:
        """The events of the tick scheduled at ``timestamp_ms``.

        Each event's own ``timestamp_ms`` is the instant its values stand for:
        the scheduled instant for simulated hosts, the read time for a real one.
        A source whose hosts send the same series every time may give
        :class:`EventValues` instead, which are published without building
        their events, or :class:`EventBatch` objects of many such events,
        written and checked at once.
        """
        ...


class HostEvents:
    """This host's collectors as an :class:`EventSource`, numbering events per family.

    Each event is stamped with the wall-clock instant its family was read, to
    the millisecond, not with the tick's scheduled instant: a counter's value
    then sits at the time it had that value, as node_exporter's scrapes do.
    A collector that fails is logged and skipped for that tick; the others still report.

    Args:
        collectors: one per family, in the order they are read.
        host_id: the events' key and ``host``.
        host_labels: static labels every event carries.
        region: the host's region, stamped on every event (None: none).
        clock: wall-clock seconds (``time.time``); replaced in tests.
    """

    def __init__(
        self,
        collectors: Sequence[Collector],
        host_id: str,
        host_labels: dict[str, str],
        clock: Callable[[], float] = time.time,
        region: str | None = None,
    ) -> None:
        self.region = region
        self.collectors = list(collectors)
        self._clock = clock
        self._families = [c.family for c in self.collectors]
        self.host_id = host_id
        self.host_labels = dict(host_labels)
        self._seq = dict.fromkeys(self._families, 0)

    @property
    def families(self) -> Sequence[str]:
        return self._families

    def events(self, timestamp_ms: int, interval_ms: int) -> Iterable[MetricEvent]:
        """The events of one tick; ``timestamp_ms`` (the scheduled instant) is not used."""
        for collector in self.collectors:
            family = collector.family
            read_at_ms = round(self._clock() * 1000)
            try:
                samples = collector.collect()
            except Exception:  # a broken /proc file must not stop the other families
                log.exception("collecting %s failed", family)
                continue
            yield MetricEvent(
                host=self.host_id,
                family=family,
                timestamp_ms=read_at_ms,
                samples=tuple(samples),
                interval_ms=interval_ms,
                seq=self._seq[family],
                host_labels=self.host_labels,
                region=self.region,
            )
            self._seq[family] += 1


def collectors_for(settings: Settings, source: HostSource | None = None) -> list[Collector]:
    """The collectors of ``source`` (default: this host), with the settings' filters."""

    def pattern(configured: str | None, default: str | None) -> str | None:
        if configured is None:
            return default
        return configured or None  # empty: filter nothing

    return default_collectors(
        source,
        mount_points_exclude=pattern(
            settings.collect_mount_points_exclude, DEFAULT_MOUNT_POINTS_EXCLUDE
        ),
        fs_types_exclude=pattern(settings.collect_fs_types_exclude, DEFAULT_FS_TYPES_EXCLUDE),
        disk_device_exclude=pattern(
            settings.collect_disk_device_exclude, DEFAULT_DISK_DEVICE_EXCLUDE
        ),
        network_device_exclude=pattern(settings.collect_network_device_exclude, None),
        process_states=settings.collect_process_states,
    )


@dataclass
class ProducerReport:
    """What a producer run did, for the end-of-run line and for tests."""

    ticks: int = 0
    skipped_ticks: int = 0
    #: Events (and samples) queued for Kafka.
    events: int = 0
    samples: int = 0
    #: Of those, what Kafka acknowledged by the end (after the exit's flush).
    acknowledged: int = 0
    acknowledged_samples: int = 0
    #: Events Kafka refused or that failed to reach it (each logged in a summary line).
    failed: int = 0
    dropped: int = 0
    #: Samples not sent because they broke the validation contract.
    invalid_samples: int = 0
    unflushed: int = 0
    collect_seconds: float = 0.0
    #: From the start to the last acknowledgement (the exit's flush included).
    elapsed_seconds: float = 0.0
    #: Process CPU time (user + system, every thread) spent in the loop.
    cpu_seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        """Acknowledged events per second: what reached Kafka, not what was queued."""
        return self.acknowledged / self.elapsed_seconds if self.elapsed_seconds else 0.0

    @property
    def samples_per_second(self) -> float:
        """Samples of acknowledged events per second."""
        return self.acknowledged_samples / self.elapsed_seconds if self.elapsed_seconds else 0.0

    @property
    def lost(self) -> int:
        """Events that never reached Kafka: refused, dropped on a full queue, or unflushed.

        ``hoststream produce`` exits 1 when it is not 0: a run that lost data failed.
        """
        return self.failed + self.dropped + self.unflushed

    @property
    def cpu_ms_per_tick(self) -> float:
        """CPU cost of one collection: collecting, encoding and producing all families."""
        return 1000 * self.cpu_seconds / self.ticks if self.ticks else 0.0

    def summary(self) -> str:
        """The line ``hoststream produce`` ends with."""
        return (
            f"produced {self.events} events ({self.samples} samples), "
            f"acknowledged {self.acknowledged} in {self.elapsed_seconds:.1f}s: "
            f"{self.events_per_second:.0f} events/s, "
            f"{self.samples_per_second:.0f} samples/s; failed {self.failed}, "
            f"dropped {self.dropped}, "
            f"invalid samples not sent {self.invalid_samples}, "
            f"unacknowledged at exit {self.unflushed}, ticks {self.ticks} "
            f"(skipped {self.skipped_ticks}), CPU {self.cpu_ms_per_tick:.1f} ms per tick"
        )


def create_metric_topics(settings: Settings, families: Iterable[str]) -> None:
    ensure_topics(
        settings,
        [
            TopicSpec(
                metric_topic(settings, family),
                settings.topic_partitions,
                settings.topic_replication_factor,
            )
            for family in families
        ],
    )


def run_producer(
    settings: Settings,
    source: EventSource,
    publisher: EventPublisher,
    stop: threading.Event,
    *,
    interval_s: float,
    speedup: float = 1.0,
    duration_s: float | None = None,
    flush_timeout_s: float = 30.0,
    pace: bool = False,
    tracer: Tracer | None = None,
) -> ProducerReport:
    """Collect and publish at every aligned tick until ``stop`` is set or ``duration_s`` passes.

    Args:
        pace: spread each tick's events over the tick instead of sending them in
            one burst (load tests want a steady rate).
        tracer: record a :data:`PRODUCE_SPAN` span per tick and send its
            ``traceparent`` with each of the tick's messages; None (or the
            no-op tracer of :func:`hoststream.tracing.configure_tracing` when
            tracing is off): no span and no header.
    """
    report = ProducerReport()
    started = time.monotonic()
    cpu_started = _process_cpu_seconds()
    deadline = started + duration_s if duration_s is not None else None

    def should_stop() -> bool:
        return stop.is_set() or (deadline is not None and time.monotonic() >= deadline)

    def sleep(seconds: float) -> None:
        # Serve delivery callbacks while waiting; wake up early on stop.
        end = time.monotonic() + seconds
        while not should_stop():
            publisher.service()
            left = end - time.monotonic()
            if left <= 0:
                return
            stop.wait(min(left, 0.2))

    invalid_before = (publisher.invalid_samples, publisher.invalid_events)
    delivered_before = (
        publisher.acknowledged,
        publisher.acknowledged_samples,
        publisher.failed,
    )
    ticker = AlignedTicker(interval_s, speedup=speedup, sleep=sleep, stopped=should_stop)
    period_s = interval_s / speedup
    interval_ms = round(interval_s * 1000)
    for tick in ticker:
        report.ticks += 1
        report.skipped_ticks += tick.skipped
        tick_start = time.monotonic()
        # One span per tick, not per message: the messages of a tick share its
        # traceparent, so tracing costs a span per interval whatever the fleet size.
        tick_span = (
            nullcontext(None)
            if tracer is None
            else tracer.start_as_current_span(
                PRODUCE_SPAN,
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "hoststream.tick.timestamp_ms": tick.timestamp_ms,
                    "hoststream.tick.skipped": tick.skipped,
                },
            )
        )
        with tick_span as span:
            # No header at all (None) when the tracer is the no-op one: its span is invalid.
            headers = (inject_traceparent([]) or None) if span is not None else None
            collect_span = (
                nullcontext(None) if tracer is None else tracer.start_as_current_span(COLLECT_SPAN)
            )
            with collect_span:
                events = list(source.events(tick.timestamp_ms, interval_ms))
            report.collect_seconds += time.monotonic() - tick_start
            sent = dropped = done = 0
            total = sum(len(event) if isinstance(event, EventBatch) else 1 for event in events)
            paced = _PACE_EVERY
            for event in events:
                if isinstance(event, EventBatch):
                    queued, full, samples = publisher.publish_batch(event, headers)
                    sent += queued
                    dropped += full
                    report.samples += samples
                    done += len(event)
                else:
                    if isinstance(event, EventValues):
                        published = publisher.publish_values(event, headers)
                        samples = len(event.values)
                    else:
                        published = publisher.publish(event, headers)
                        samples = len(event.samples)
                    if published:
                        sent += 1
                        report.samples += samples
                    else:
                        dropped += 1
                    done += 1
                if pace and done >= paced:
                    paced = done + _PACE_EVERY
                    ahead = tick_start + period_s * 0.9 * done / total - time.monotonic()
                    if ahead > 0:
                        sleep(ahead)
                    if should_stop():
                        break
            report.events += sent
            report.dropped += dropped
            if span is not None:
                span.set_attribute("messaging.batch.message_count", sent)
                span.set_attribute("hoststream.events.dropped", dropped)
        if report.ticks == 1:
            # What lives past the first tick (modules, collectors, simulated host
            # models, learned layouts) lives for the whole run: leave it out of
            # the cyclic collector's scans, which otherwise walk it again and
            # again as every tick allocates (a fifth of a simulated fleet's time).
            gc.freeze()
        publisher.service()
    # publish() takes an event whose samples were all invalid without sending it.
    report.invalid_samples = publisher.invalid_samples - invalid_before[0]
    report.samples = max(0, report.samples - report.invalid_samples)
    report.events -= publisher.invalid_events - invalid_before[1]
    report.cpu_seconds = _process_cpu_seconds() - cpu_started
    report.unflushed = publisher.flush(flush_timeout_s)
    report.elapsed_seconds = time.monotonic() - started
    report.acknowledged = publisher.acknowledged - delivered_before[0]
    report.acknowledged_samples = publisher.acknowledged_samples - delivered_before[1]
    report.failed = publisher.failed - delivered_before[2]
    if report.unflushed:
        log.error("%d event(s) were not acknowledged before exit", report.unflushed)
    if report.failed:
        log.error("%d event(s) were not accepted by Kafka (see the summaries above)", report.failed)
    return report


def _process_cpu_seconds() -> float:
    # os.times counts every thread, librdkafka's included; time.process_time does too.
    times = os.times()
    return times.user + times.system

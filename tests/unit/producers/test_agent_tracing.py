"""The producer's span per tick, and the traceparent each of the tick's messages carries."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from hoststream.config import Settings
from hoststream.producers.agent import COLLECT_SPAN, PRODUCE_SPAN, run_producer
from hoststream.schemas.records import MetricEvent
from hoststream.tracing import flush_tracing, get_tracer

pytestmark = pytest.mark.usefixtures("no_otlp_environment")


class TwoFamilies:
    families = ("cpu", "memory")

    def events(self, timestamp_ms: int, interval_ms: int) -> Iterable[MetricEvent]:
        for family in self.families:
            yield MetricEvent(
                host="h1",
                family=family,
                timestamp_ms=timestamp_ms,
                samples=(),
                interval_ms=interval_ms,
                seq=0,
                host_labels={},
            )


class RecordingPublisher:
    """Keeps what would have been produced; the second event of each tick is 'dropped'."""

    def __init__(self) -> None:
        self.sent: list[tuple[MetricEvent, list[tuple[str, bytes]] | None]] = []
        self.invalid_samples = self.invalid_events = 0
        self.acknowledged = self.acknowledged_samples = self.failed = 0

    def publish(self, event: MetricEvent, headers: list[tuple[str, bytes]] | None = None) -> bool:
        self.sent.append((event, headers))
        return event.family == "cpu"

    def service(self) -> None:
        pass

    def flush(self, timeout_s: float) -> int:
        return 0


def run(tracer) -> RecordingPublisher:
    publisher = RecordingPublisher()
    run_producer(
        Settings(),
        TwoFamilies(),
        publisher,  # type: ignore[arg-type]
        threading.Event(),
        interval_s=0.05,
        duration_s=0.18,
        tracer=tracer,
    )
    assert len(publisher.sent) >= 4, "expected at least two ticks"
    return publisher


def test_each_message_carries_the_traceparent_of_its_tick_span(
    spans: InMemorySpanExporter,
) -> None:
    publisher = run(get_tracer())
    flush_tracing()
    finished = spans.get_finished_spans()
    ticks = [s for s in finished if s.name == PRODUCE_SPAN]
    collects = [s for s in finished if s.name == COLLECT_SPAN]
    assert len(ticks) == len(publisher.sent) // 2
    assert len(collects) == len(ticks)
    by_timestamp = {s.attributes["hoststream.tick.timestamp_ms"]: s for s in ticks}
    for event, headers in publisher.sent:
        assert headers is not None
        [(name, value)] = headers
        assert name == "traceparent"
        _, trace_id, span_id, _ = value.decode().split("-")
        tick = by_timestamp[event.timestamp_ms]
        assert trace_id == trace.format_trace_id(tick.context.trace_id)
        assert span_id == trace.format_span_id(tick.context.span_id)
    for tick in ticks:
        assert tick.kind == SpanKind.PRODUCER
        assert tick.parent is None
        assert tick.attributes["messaging.system"] == "kafka"
        assert tick.attributes["messaging.batch.message_count"] == 1
        assert tick.attributes["hoststream.events.dropped"] == 1
    assert {c.parent.span_id for c in collects} == {t.context.span_id for t in ticks}


def test_without_a_tracer_messages_have_no_headers(spans: InMemorySpanExporter) -> None:
    publisher = run(None)
    flush_tracing()
    assert all(headers is None for _, headers in publisher.sent)
    assert spans.get_finished_spans() == ()


def test_the_no_op_tracer_adds_no_header() -> None:
    publisher = run(trace.NoOpTracer())
    assert all(headers is None for _, headers in publisher.sent)

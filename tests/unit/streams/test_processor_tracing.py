"""The stream processor's span per batch: links to the producers; what it emits names it."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.schemas import MetricEvent, Sample, codec_for
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.processor import CLOSE_QUIET_SPAN, PROCESS_SPAN, BatchProcessor
from hoststream.tracing import flush_tracing, inject_traceparent
from tests.support.doubles.faust import Message
from tests.support.tracing import ids, json_lines, producer_tick, traceparent_ids

pytestmark = pytest.mark.usefixtures("no_otlp_environment")

T0 = 1_798_761_600_000
SETTINGS = Settings(schema_registry_url=None)
SERIALIZE = codec_for(SETTINGS, MetricEvent).serializer


class UnreadableHeaders(Message):
    """A message whose headers must not be looked at (tracing is off)."""

    @property  # type: ignore[override]
    def headers(self):
        raise AssertionError("headers were read with tracing off")

    @headers.setter
    def headers(self, _value) -> None:
        pass


def message(ts: int, headers=(), host: str = "a") -> Message:
    event = MetricEvent(host, "system", ts, (Sample("node_load1", 1.0),))
    return Message("metrics.system", 0, SERIALIZE(event), list(headers))


class Harness:
    """A processor whose emit and reject record the traceparent current when called."""

    def __init__(self) -> None:
        self.emitted: list[tuple[int, tuple[str, str] | None]] = []
        self.rejected: list[tuple[str, str] | None] = []
        self.now = T0

        async def emit(aggregates, alerts) -> None:
            # What streams.app's emit puts on every aggregate and alert it sends.
            self.emitted.append((len(aggregates), traceparent_ids(inject_traceparent([]))))

        async def reject(rejection) -> None:
            headers = list(rejection.record.headers)
            self.rejected.append(traceparent_ids(inject_traceparent(headers)))

        self.processor = BatchProcessor(
            WindowAggregator(["1m"], grace_ms=0, metrics=StreamMetrics(CollectorRegistry())),
            {},
            decode=codec_for(SETTINGS, MetricEvent).deserializer,
            emit=emit,
            reject=reject,
            family_of_topic={"metrics.system": "system"},
            clock_ms=lambda: self.now,
        )

    def process(self, messages) -> int:
        return asyncio.run(self.processor.process(messages))


def test_a_batch_span_links_to_each_producer_tick_and_names_itself_on_what_it_emits(
    spans: InMemorySpanExporter,
) -> None:
    tick_1, headers_1 = producer_tick()
    tick_2, headers_2 = producer_tick()
    h = Harness()
    batch = [
        message(T0, headers_1),
        message(T0 + 10_000, headers_1),
        Message("metrics.system", 0, b"\x00garbage", list(headers_2)),
        message(T0 + 60_000, headers_2),  # closes the first window
    ]
    with json_lines("hoststream.streams.processor") as lines:
        assert h.process(batch) == 1
    flush_tracing()
    [span] = [s for s in spans.get_finished_spans() if s.name == PROCESS_SPAN]
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is None
    links = {ids(link.context): link.attributes["hoststream.message_count"] for link in span.links}
    assert links == {ids(tick_1): 2, ids(tick_2): 2}
    assert span.attributes["messaging.batch.message_count"] == 4
    assert span.attributes["hoststream.windows.closed"] == 1
    assert span.attributes["hoststream.messages.rejected"] == 1
    # The aggregate and the dead letter name the batch span, not the producer's tick.
    assert h.emitted == [(1, ids(span))]
    assert h.rejected == [ids(span)]
    [warning] = [line for line in lines if line["msg"].startswith("rejected")]
    assert (warning["trace_id"], warning["span_id"]) == ids(span)


def test_windows_closed_by_the_timer_carry_a_span_of_their_own(
    spans: InMemorySpanExporter,
) -> None:
    _, headers = producer_tick()
    h = Harness()
    h.process([message(T0, headers)])
    h.now = T0 + 30_000  # nothing due yet: no span for an idle tick
    asyncio.run(h.processor.close_quiet([0]))
    h.now = T0 + 120_000
    asyncio.run(h.processor.close_quiet([0]))
    flush_tracing()
    closes = [s for s in spans.get_finished_spans() if s.name == CLOSE_QUIET_SPAN]
    [close] = closes
    assert close.attributes["hoststream.windows.closed"] == 1
    assert h.emitted[-1] == (1, ids(close))
    assert [n for n, _ in h.emitted] == [0, 0, 1]


def test_with_tracing_off_no_header_is_read_and_none_is_added() -> None:
    h = Harness()
    batch = [UnreadableHeaders("metrics.system", 0, message(T0).value)]
    batch.append(UnreadableHeaders("metrics.system", 0, message(T0 + 60_000).value))
    assert h.process(batch) == 1
    assert h.emitted == [(1, None)]

"""A sink's span per batch attempt: linked to its messages' spans, named by its dead letters."""

from __future__ import annotations

import pytest
from confluent_kafka import Message
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hoststream.dead_letters import HEADER_SINK
from hoststream.errors import SinkUnavailableError
from hoststream.sinks.alerts.routing import parse_routes
from hoststream.sinks.alerts.sink import AlertSink
from hoststream.sinks.base import SinkRecord
from hoststream.sinks.consumer import SinkConsumer, write_span_name
from hoststream.tracing import flush_tracing, get_tracer
from tests.support.alerts import firing
from tests.support.doubles.alerts import Receiver
from tests.support.doubles.kafka import (
    FakeConsumer,
    FakeProducer,
    IntDecoder,
    RecordingSink,
)
from tests.support.sink_loop import SinkLoopRig
from tests.support.tracing import ids, json_lines, producer_tick, traceparent_ids

pytestmark = pytest.mark.usefixtures("no_otlp_environment")


def rig(values_and_headers) -> tuple[SinkConsumer, RecordingSink, FakeProducer, FakeConsumer]:
    log = [
        Message(topic="m", partition=0, offset=i, key=b"k", value=v, headers=list(h))
        for i, (v, h) in enumerate(values_and_headers)
    ]
    built = SinkLoopRig(
        {("m", 0): log}, sink=RecordingSink(), decoder=IntDecoder(), max_records=len(log)
    )
    return built.loop, built.sink, built.producer, built.consumer


def test_a_written_batch_is_one_span_linked_to_its_messages_and_dead_letters_name_it(
    spans: InMemorySpanExporter,
) -> None:
    tick_1, headers_1 = producer_tick()
    tick_2, headers_2 = producer_tick()
    loop, sink, producer, consumer = rig(
        [(b"1", headers_1), (b"x", headers_1), (b"13", headers_2), (b"4", headers_2)]
    )
    with json_lines("hoststream.sinks.dlq") as lines:
        loop.step()
    assert sink.stored == [1, 4]
    assert consumer.committed == {("m", 0): 4}
    flush_tracing()
    [span] = [s for s in spans.get_finished_spans() if s.name == write_span_name("recording")]
    assert span.kind is SpanKind.CONSUMER
    links = {ids(link.context): link.attributes["hoststream.message_count"] for link in span.links}
    assert links == {ids(tick_1): 2, ids(tick_2): 2}
    assert span.attributes["messaging.batch.message_count"] == 4
    assert span.attributes["hoststream.records.written"] == 2
    assert span.attributes["hoststream.records.rejected"] == 2  # undecodable, and refused
    assert span.status.status_code is StatusCode.UNSET
    # Both dead letters name the write span, once, instead of the producer's tick.
    assert len(producer.sent) == 2
    for dead in producer.sent:
        assert [k for k, _ in dead["headers"]].count("traceparent") == 1
        assert traceparent_ids(dead["headers"]) == ids(span)
        assert (HEADER_SINK, b"recording") in dead["headers"]
    [line] = [line for line in lines if line["msg"].startswith("dead-lettered")]
    assert (line["trace_id"], line["span_id"]) == ids(span)


def test_each_attempt_is_a_span_and_a_failed_one_carries_the_error(
    spans: InMemorySpanExporter,
) -> None:
    _, headers = producer_tick()
    loop, sink, _, consumer = rig([(b"1", headers), (b"2", headers)])
    sink.failures = [SinkUnavailableError("VictoriaMetrics answered 503")]
    with json_lines("hoststream.sinks.consumer") as lines:
        loop.step()  # the write fails: paused, retry later
        assert loop.paused
        loop._clock.sleep(5)
        loop.step()
    assert sink.stored == [1, 2]
    assert consumer.committed == {("m", 0): 2}
    flush_tracing()
    failed, ok = [s for s in spans.get_finished_spans() if s.name == write_span_name("recording")]
    assert failed.status.status_code is StatusCode.ERROR
    assert "503" in failed.status.description
    assert [e.name for e in failed.events] == ["exception"]
    assert ok.status.status_code is StatusCode.UNSET
    assert [ids(link.context) for link in failed.links] == [ids(link.context) for link in ok.links]
    [retry] = [line for line in lines if "retry 1" in line["msg"]]
    assert (retry["trace_id"], retry["span_id"]) == ids(failed)


def test_with_tracing_off_dead_letters_keep_the_original_traceparent() -> None:
    headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    loop, _, producer, _ = rig([(b"x", headers)])
    loop.step()
    [dead] = producer.sent
    assert traceparent_ids(dead["headers"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )


def test_each_alert_delivery_is_a_child_span_of_the_write(spans: InMemorySpanExporter) -> None:
    routes = parse_routes(
        "default:\n  receivers: [alertmanager]\n", "r.yaml", available=["alertmanager"]
    )
    sink = AlertSink(routes, {"alertmanager": Receiver()})
    try:
        with get_tracer().start_as_current_span("write alerts") as write:
            sink.write([SinkRecord("alerts", 0, 0, b"k", b"", firing("a"))])
    finally:
        sink.close()
    flush_tracing()
    [deliver] = [s for s in spans.get_finished_spans() if s.name == "deliver alertmanager"]
    assert deliver.kind is SpanKind.CLIENT
    assert deliver.parent.span_id == write.get_span_context().span_id
    assert deliver.attributes["hoststream.alert.dedup_key"] == "a"
    assert deliver.attributes["hoststream.alert.attempts"] == 1

"""Log lines carry the current span's ids; OTLP log export sends the same records."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hoststream.telemetry import JsonFormatter, OtlpLogHandler, configure_logging
from hoststream.tracing import flush_tracing, get_tracer

pytestmark = pytest.mark.usefixtures("no_otlp_environment")

log = logging.getLogger("hoststream.test")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Whatever the stderr handler of :func:`configure_logging` writes; call ``logging_to``."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:], level = saved
    root.setLevel(level)


def logging_to(stream: io.StringIO, component: str, fmt: str) -> None:
    configure_logging(component, "INFO", fmt)
    # pytest swaps sys.stderr around each test phase, so redirect the handler itself.
    [handler] = [h for h in logging.getLogger().handlers if not isinstance(h, OtlpLogHandler)]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)


def span_ids(span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


def test_json_lines_carry_the_ids_of_the_active_span(
    spans: InMemorySpanExporter, captured: io.StringIO
) -> None:
    logging_to(captured, "producer", "json")
    log.info("before")
    with get_tracer().start_as_current_span("outer") as outer:
        log.info("in outer")
        with get_tracer().start_as_current_span("inner") as inner:
            log.warning("in inner %d", 7)
    log.info("after")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["before", "in outer", "in inner 7", "after"]
    got = [(line["trace_id"], line["span_id"]) for line in lines]
    assert got == [(None, None), span_ids(outer), span_ids(inner), (None, None)]
    assert lines[2]["level"] == "warning"
    assert lines[2]["component"] == "producer"


def test_json_lines_without_tracing_have_null_ids(captured: io.StringIO) -> None:
    logging_to(captured, "sink-sql", "json")
    with get_tracer().start_as_current_span("no-op"):
        log.info("x")
    [line] = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert line["trace_id"] is None
    assert line["span_id"] is None


def test_json_formatter_keeps_exceptions(spans: InMemorySpanExporter) -> None:
    try:
        raise ValueError("bad sample")
    except ValueError:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "failed", (), None)
        import sys

        record.exc_info = sys.exc_info()
    with get_tracer().start_as_current_span("s") as span:
        entry = json.loads(JsonFormatter("stream").format(record))
    assert "ValueError: bad sample" in entry["exc"]
    assert entry["trace_id"] == span_ids(span)[0]


def test_console_lines_name_the_span_only_inside_one(
    spans: InMemorySpanExporter, captured: io.StringIO
) -> None:
    logging_to(captured, "stream", "console")
    log.info("outside")
    with get_tracer().start_as_current_span("s") as span:
        log.info("inside")
    outside, inside = captured.getvalue().splitlines()
    assert "trace_id" not in outside
    assert outside.endswith("stream INFO hoststream.test: outside")
    trace_id, span_id = span_ids(span)
    assert inside.endswith(f"hoststream.test trace_id={trace_id} span_id={span_id}: inside")


def test_otlp_log_records_carry_trace_context_and_severity(
    log_records: InMemoryLogRecordExporter, captured: io.StringIO
) -> None:
    logging_to(captured, "stream", "json")  # after configure_tracing: the handler stays
    assert any(isinstance(h, OtlpLogHandler) for h in logging.getLogger().handlers)
    with get_tracer().start_as_current_span("window") as span:
        log.warning("late event for %s", "h1")
    log.info("no span")
    logging.getLogger("opentelemetry.exporter.otlp").warning("export failed")
    flush_tracing()
    records = [r.log_record for r in log_records.get_finished_logs()]
    assert [r.body for r in records] == ["late event for h1", "no span"]
    first, second = records
    assert first.severity_number == SeverityNumber.WARN
    assert first.severity_text == "WARNING"
    assert (trace.format_trace_id(first.trace_id), trace.format_span_id(first.span_id)) == (
        span_ids(span)
    )
    assert not second.trace_id
    assert first.attributes["code.function.name"] == (
        "test_otlp_log_records_carry_trace_context_and_severity"
    )
    resource = log_records.get_finished_logs()[0].resource
    assert resource.attributes["service.name"] == "hoststream-stream"
    # The stderr line of the same record has the same ids.
    line = json.loads(captured.getvalue().splitlines()[0])
    assert line["trace_id"] == span_ids(span)[0]

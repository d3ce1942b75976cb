"""Reading back traces and logs: span ids, traceparent headers, a producer's span, JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

from hoststream.telemetry import JsonFormatter
from hoststream.tracing import get_tracer, inject_traceparent


def ids(span) -> tuple[str, str]:
    """(trace id, span id) in hex of a span or a span context."""
    ctx = span if isinstance(span, trace.SpanContext) else span.get_span_context()
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


def traceparent_ids(headers) -> tuple[str, str] | None:
    """(trace id, span id) named by the ``traceparent`` among ``headers``, or None."""
    found = [v for k, v in headers or [] if k == "traceparent"]
    if not found:
        return None
    [value] = found
    value = value.decode() if isinstance(value, bytes) else value
    _, trace_id, span_id, _ = value.split("-")
    return trace_id, span_id


def producer_tick() -> tuple[trace.Span, list[tuple[str, bytes]]]:
    """A finished 'produce metrics' span and the headers its messages would carry."""
    with get_tracer().start_as_current_span("produce metrics") as span:
        headers = inject_traceparent([])
    return span, headers


@contextmanager
def json_lines(*loggers: str) -> Iterator[list[dict]]:
    """The JSON lines (as dicts) that ``loggers`` write while the block runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for logger, _ in saved:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
        lines += [json.loads(line) for line in stream.getvalue().splitlines()]

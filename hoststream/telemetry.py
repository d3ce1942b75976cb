"""Logging set-up shared by every component.

``console`` is for people at a terminal; ``json`` writes one object per line
for Loki (via Promtail or Alloy: ``deploy/loki/``). Both carry the trace and
span ids of the span current when the line was logged, so a log line leads to
its trace and back. With ``HOSTSTREAM_OTLP_LOGS=true``, :mod:`hoststream.tracing`
also sends every record over OTLP through :class:`OtlpLogHandler`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import Logger, LoggerProvider, SeverityNumber

__all__ = [
    "JsonFormatter",
    "OtlpLogHandler",
    "attach_otlp_log_handler",
    "configure_logging",
    "current_trace_ids",
    "detach_otlp_log_handler",
]


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span in W3C hex, or None when there is none."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return trace.format_trace_id(span_context.trace_id), trace.format_span_id(span_context.span_id)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``trace_id`` and ``span_id`` are null outside a span.

    The keys are always present so that a Loki pipeline or a ``jq`` filter can
    rely on them.
    """

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        ids = current_trace_ids()
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "msg": record.getMessage(),
            "trace_id": ids[0] if ids else None,
            "span_id": ids[1] if ids else None,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _ConsoleFormatter(logging.Formatter):
    """Text lines; ``trace_id=... span_id=...`` follow the logger's name inside a span."""

    def __init__(self, component: str) -> None:
        super().__init__(
            f"%(asctime)s {component} %(levelname)s %(name)s%(hoststream_trace)s: %(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        ids = current_trace_ids()
        record.hoststream_trace = f" trace_id={ids[0]} span_id={ids[1]}" if ids else ""
        return super().format(record)


# Python's levels onto OpenTelemetry's severities (the logs data model's table).
_SEVERITY = (
    (logging.CRITICAL, SeverityNumber.FATAL),
    (logging.ERROR, SeverityNumber.ERROR),
    (logging.WARNING, SeverityNumber.WARN),
    (logging.INFO, SeverityNumber.INFO),
    (logging.DEBUG, SeverityNumber.DEBUG),
)


def _severity(levelno: int) -> SeverityNumber:
    for threshold, severity in _SEVERITY:
        if levelno >= threshold:
            return severity
    return SeverityNumber.TRACE


class OtlpLogHandler(logging.Handler):
    """Sends log records to an OpenTelemetry logger provider (exported over OTLP).

    The SDK's own ``LoggingHandler`` is deprecated in favour of a separate
    instrumentation package; this is the small part of it hoststream needs.
    The current context goes with each record, so the exported record carries
    the trace and span ids as the JSON line does.

    Args:
        logger_provider: the provider :func:`hoststream.tracing.configure_tracing`
            set up with the component's resource and an OTLP exporter.
    """

    def __init__(self, logger_provider: LoggerProvider, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.logger_provider = logger_provider
        self._loggers: dict[str, Logger] = {}

    def emit(self, record: logging.LogRecord) -> None:
        # The exporter logs its own failures: sending those would feed back forever.
        if record.name.startswith("opentelemetry"):
            return
        try:
            logger = self._loggers.get(record.name)
            if logger is None:
                logger = self._loggers[record.name] = self.logger_provider.get_logger(record.name)
            attributes: dict[str, Any] = {
                "code.file.path": record.pathname,
                "code.function.name": record.funcName,
                "code.line.number": record.lineno,
                "thread.name": record.threadName or "",
            }
            if record.exc_info and record.exc_info[0] is not None:
                attributes["exception.type"] = record.exc_info[0].__name__
                attributes["exception.message"] = str(record.exc_info[1])
                attributes["exception.stacktrace"] = logging.Formatter().formatException(
                    record.exc_info
                )
            logger.emit(
                timestamp=int(record.created * 1e9),
                observed_timestamp=time.time_ns(),
                context=otel_context.get_current(),
                severity_number=_severity(record.levelno),
                severity_text=record.levelname,
                body=record.getMessage(),
                attributes=attributes,
            )
        except Exception:
            self.handleError(record)


def attach_otlp_log_handler(logger_provider: LoggerProvider) -> OtlpLogHandler:
    """Send the root logger's records to ``logger_provider`` too (replacing an earlier one)."""
    root = logging.getLogger()
    handler = OtlpLogHandler(logger_provider)
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, OtlpLogHandler)]
    root.addHandler(handler)
    return handler


def detach_otlp_log_handler(logger_provider: LoggerProvider) -> None:
    """Stop sending records to ``logger_provider``."""
    root = logging.getLogger()
    root.handlers[:] = [
        h
        for h in root.handlers
        if not (isinstance(h, OtlpLogHandler) and h.logger_provider is logger_provider)
    ]


def configure_logging(component: str, level: str = "INFO", fmt: str = "console") -> None:
    """Send log records to stderr, as text or as JSON lines.

    An OTLP handler already attached by :func:`hoststream.tracing.configure_tracing`
    is kept, so the two may be called in either order.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(component))
    else:
        handler.setFormatter(_ConsoleFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler, *(h for h in root.handlers if isinstance(h, OtlpLogHandler))]
    root.setLevel(level)
    # librdkafka and aiokafka are chatty at INFO; so is urllib3, which the OTLP exporter uses.
    for noisy in ("aiokafka", "kafka", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

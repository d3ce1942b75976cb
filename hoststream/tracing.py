"""Traces across Kafka: OpenTelemetry set-up and the ``traceparent`` message header.

Start reading at :func:`configure_tracing`. Each component (producer, stream
processor, each sink) calls it once at start-up with its component name; when
``HOSTSTREAM_OTLP_ENDPOINT`` (or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``)
is set, spans are exported over OTLP/HTTP to that endpoint, and otherwise the
returned tracer is OpenTelemetry's no-op tracer: no spans are recorded and
:func:`inject_traceparent` adds no header, so tracing costs nothing when off.

A trace crosses Kafka in the W3C ``traceparent`` message header (docs/contract.md):
the producer calls :func:`inject_traceparent` inside its batch span, a consumer
of one message continues that trace with :func:`extract_context`, and a consumer
of a batch with many parents links them with :func:`links_from_headers`
(docs/observability.md shows each).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from hoststream import __version__
from hoststream.errors import ConfigurationError
from hoststream.telemetry import attach_otlp_log_handler, detach_otlp_log_handler

if TYPE_CHECKING:
    # The SDK is imported when tracing is turned on: a component without an
    # endpoint does not carry it in memory.
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from hoststream.config import Settings

__all__ = [
    "TRACEPARENT",
    "KafkaHeaders",
    "MessageHeaders",
    "batch_span",
    "build_resource",
    "configure_tracing",
    "extract_context",
    "flush_tracing",
    "get_tracer",
    "inject_traceparent",
    "links_from_headers",
    "open_batch_span",
    "otlp_endpoint",
    "service_name",
    "shutdown_tracing",
    "tracer_provider",
    "tracing_enabled",
    "using_span",
]

#: The W3C Trace Context header every traced message carries.
TRACEPARENT = "traceparent"

#: Message headers as the Kafka clients hand them over: confluent-kafka's
#: ``Message.headers()`` (a list of pairs, or None), aiokafka's and Faust's
#: sequences of pairs, or a mapping. Values may be bytes, text or None.
KafkaHeaders = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None

#: Headers as confluent-kafka's ``produce`` takes them (and ``Message.headers()``
#: returns them), so :func:`inject_traceparent` can add to a message's own list.
MessageHeaders = list[tuple[str, str | bytes | None]]

#: The instrumentation scope of hoststream's own spans.
_SCOPE = "hoststream"

# Fixed rather than the global propagator: the contract promises W3C
# traceparent on the wire whatever OTEL_PROPAGATORS says.
_PROPAGATOR = TraceContextTextMapPropagator()
_NOOP_TRACER: Tracer = trace.NoOpTracer()


@dataclass
class _Active:
    """What :func:`configure_tracing` set up in this process."""

    tracer: Tracer
    tracer_provider: TracerProvider | None = None
    logger_provider: LoggerProvider | None = None


class _Current:
    """The process's one set-up, replaced as a whole under the lock."""

    lock = threading.Lock()
    active = _Active(_NOOP_TRACER)


def service_name(component: str) -> str:
    """``service.name`` of a component: ``producer`` -> ``hoststream-producer``.

    Components are ``producer``, ``stream``, ``sink-victoriametrics``,
    ``sink-sql``, ``sink-alerts``, ``api``; a name that already starts with
    ``hoststream-`` is kept as it is.
    """
    name = component.strip()
    if not name:
        raise ValueError("component name is empty")
    return name if name.startswith("hoststream-") else f"hoststream-{name}"


def otlp_endpoint(settings: Settings) -> str | None:
    """The OTLP/HTTP base URL to export to, or None when export is off.

    ``HOSTSTREAM_OTLP_ENDPOINT`` wins over ``OTEL_EXPORTER_OTLP_ENDPOINT``;
    ``OTEL_SDK_DISABLED=true`` turns export off whatever is set. A signal path
    given by mistake (``.../v1/traces``) is removed, since the path of each
    signal is added here.

    Raises:
        ConfigurationError: the endpoint is not an ``http(s)://host:port`` URL.
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    setting, raw = "HOSTSTREAM_OTLP_ENDPOINT", settings.otlp_endpoint
    if not raw:
        setting, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not raw or not raw.strip():
        return None
    base = raw.strip().rstrip("/")
    for signal_path in ("/v1/traces", "/v1/logs", "/v1/metrics"):
        base = base.removesuffix(signal_path)
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            setting,
            f"expected an OTLP/HTTP URL such as http://127.0.0.1:4318, got {raw!r} "
            "(hoststream exports over HTTP, not gRPC)",
        )
    return base


def build_resource(settings: Settings, component: str) -> Resource:
    """The resource every span and log record of ``component`` carries.

    ``host.name`` is the configured host id (default: the hostname), the name
    the host's metrics carry too, so a trace and the series of one host meet.
    ``OTEL_RESOURCE_ATTRIBUTES`` adds attributes but cannot override these.
    """
    from opentelemetry.sdk.resources import Resource

    return Resource.create(
        {
            "service.name": service_name(component),
            "service.namespace": "hoststream",
            "service.version": __version__,
            # Tells two processes of one component apart in the trace view.
            "service.instance.id": str(uuid.uuid4()),
            "host.name": settings.host_id,
        }
    )


def configure_tracing(
    settings: Settings,
    component: str,
    *,
    span_exporter: SpanExporter | None = None,
    log_exporter: LogRecordExporter | None = None,
    set_global: bool = True,
) -> Tracer:
    """Set up tracing (and OTLP log export) for this process; return its tracer.

    Call once at start-up, after :func:`hoststream.telemetry.configure_logging`
    or before it: the log handler survives either order. Calling again replaces
    the earlier set-up (its spans are flushed first).

    Args:
        settings: ``otlp_endpoint`` and ``otlp_logs`` decide what is exported;
            ``host_id`` names the host in the resource.
        component: ``producer``, ``stream``, ``sink-victoriametrics``...; see
            :func:`service_name`.
        span_exporter: export spans here instead of over OTLP (tests); turns
            tracing on even without an endpoint.
        log_exporter: export log records here instead of over OTLP (tests);
            turns OTLP log export on even without ``otlp_logs``.
        set_global: also make this OpenTelemetry's global tracer provider, so
            ``opentelemetry.trace.get_tracer`` works too. OpenTelemetry allows
            that once per process, so tests pass False.

    Returns:
        A tracer of the ``hoststream`` scope; the no-op tracer when export is off.

    Raises:
        ConfigurationError: a malformed endpoint, or ``HOSTSTREAM_OTLP_LOGS``
            without an endpoint.
    """
    endpoint = otlp_endpoint(settings)
    # A log store of its own (VictoriaLogs), or the trace endpoint's /v1/logs.
    logs_url = settings.otlp_logs_endpoint or (
        f"{endpoint}/v1/logs" if settings.otlp_logs and endpoint is not None else None
    )
    if settings.otlp_logs and logs_url is None and log_exporter is None:
        raise ConfigurationError(
            "HOSTSTREAM_OTLP_LOGS",
            "log export needs HOSTSTREAM_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_ENDPOINT)",
        )
    shutdown_tracing()
    tracing_on = endpoint is not None or span_exporter is not None
    logs_on = log_exporter is not None or logs_url is not None
    if not tracing_on and not logs_on:
        return _NOOP_TRACER

    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = build_resource(settings, component)
    active = _Active(_NOOP_TRACER)
    if tracing_on:
        if span_exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # A short timeout: an absent collector must not hold up shutdown for long.
            span_exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=5)
        provider = TracerProvider(resource=resource, shutdown_on_exit=True)
        # Batching in a background thread keeps export off the hot path.
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
        active.tracer_provider = provider
        active.tracer = provider.get_tracer(_SCOPE, __version__)
        if set_global and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
    if logs_on:
        if log_exporter is None:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            log_exporter = OTLPLogExporter(endpoint=logs_url, timeout=5)
        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=True)
        # Batched in a background thread with a bounded queue: a log store that
        # is down costs dropped records, never a blocked component.
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
        attach_otlp_log_handler(logger_provider)
        active.logger_provider = logger_provider
    with _Current.lock:
        _Current.active = active
    return active.tracer


def get_tracer() -> Tracer:
    """The tracer :func:`configure_tracing` set up; the no-op tracer before or without it."""
    return _Current.active.tracer


def tracing_enabled() -> bool:
    """True when spans are recorded and exported."""
    return _Current.active.tracer_provider is not None


def tracer_provider() -> TracerProvider | None:
    """The provider :func:`configure_tracing` set up, for instrumentation libraries; None when off.

    Hand it to an instrumentation explicitly rather than relying on the global
    provider, which a test (``set_global=False``) or an earlier set-up may own.
    """
    return _Current.active.tracer_provider


def flush_tracing(timeout_s: float = 5.0) -> bool:
    """Export every finished span and log record now; False if that timed out."""
    return _flush(_Current.active, timeout_s)


def _flush(active: _Active, timeout_s: float) -> bool:
    timeout_ms = int(timeout_s * 1000)
    done = True
    if active.tracer_provider is not None:
        done = active.tracer_provider.force_flush(timeout_ms) and done
    if active.logger_provider is not None:
        done = active.logger_provider.force_flush(timeout_ms) and done
    return done


def shutdown_tracing(timeout_s: float = 5.0) -> None:
    """Flush and stop export; afterwards :func:`get_tracer` is the no-op tracer again.

    Call it when the component stops (it is also run at interpreter exit, but
    by then a signal handler or ``os._exit`` may have skipped it).
    """
    with _Current.lock:
        active, _Current.active = _Current.active, _Active(_NOOP_TRACER)
    if active.tracer_provider is None and active.logger_provider is None:
        return
    _flush(active, timeout_s)
    if active.logger_provider is not None:
        detach_otlp_log_handler(active.logger_provider)
        active.logger_provider.shutdown()
    if active.tracer_provider is not None:
        active.tracer_provider.shutdown()


# --- the traceparent header -------------------------------------------------


def inject_traceparent(headers: MessageHeaders, context: Context | None = None) -> MessageHeaders:
    """Add the ``traceparent`` (and ``tracestate``) of the current span to ``headers``.

    Headers of the same names already in the list are replaced, so forwarding
    a message's headers never leaves two parents. Nothing is added when no
    valid span is current, which is always the case when tracing is off.

    Args:
        headers: Kafka message headers as confluent-kafka's ``produce`` takes them;
            changed in place.
        context: take the span from this context instead of the current one.

    Returns:
        ``headers`` itself, for ``produce(..., headers=inject_traceparent([]))``.
    """
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    if carrier:
        headers[:] = [(k, v) for k, v in headers if k.lower() not in carrier]
        headers.extend((name, value.encode("ascii")) for name, value in carrier.items())
    return headers


def _text_headers(kafka_headers: KafkaHeaders) -> dict[str, str]:
    """Trace Context headers of a message as text, names in lower case."""
    if not kafka_headers:
        return {}
    pairs = kafka_headers.items() if isinstance(kafka_headers, Mapping) else kafka_headers
    found: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key not in _PROPAGATOR.fields or value is None:
            continue
        if isinstance(value, str):
            found[key] = value
            continue
        # A header that is not ASCII is not Trace Context: ignore it, as the
        # propagator ignores a malformed traceparent.
        try:
            found[key] = value.decode("ascii")
        except UnicodeDecodeError:
            continue
    return found


def extract_context(kafka_headers: KafkaHeaders, context: Context | None = None) -> Context:
    """A context whose parent span is the one named by the message's ``traceparent``.

    Use it as the ``context=`` of the span that handles one message. Without a
    (valid) ``traceparent`` the result has no parent span, and a span started
    in it begins a new trace.

    Args:
        kafka_headers: the message's headers (see :data:`KafkaHeaders`).
        context: the context to add the parent to (default: the current one).
    """
    return _PROPAGATOR.extract(_text_headers(kafka_headers), context=context)


def links_from_headers(
    headers_per_message: Iterable[KafkaHeaders], max_links: int = 128
) -> list[Link]:
    """Links to the distinct parent spans of a batch of messages.

    A span that handles many messages at once (a window flush, a sink's write)
    has many parents; it links to each instead. Messages of one producer batch
    share their parent, so the links are deduplicated, and each link says in
    ``hoststream.message_count`` how many messages of the batch it stands for.

    Args:
        headers_per_message: each message's headers, e.g.
            ``(m.headers() for m in batch)``.
        max_links: keep at most this many links, the first seen (OpenTelemetry's
            default limit per span is 128).
    """
    counts: dict[str, int] = {}
    parents: dict[str, trace.SpanContext] = {}
    for headers in headers_per_message:
        text = _text_headers(headers)
        traceparent = text.get(TRACEPARENT)
        if traceparent is None:
            continue
        if traceparent in counts:
            counts[traceparent] += 1
            continue
        if len(parents) >= max_links:
            continue
        span_context = trace.get_current_span(_PROPAGATOR.extract(text)).get_span_context()
        if span_context.is_valid:
            parents[traceparent] = span_context
            counts[traceparent] = 1
    return [
        Link(span_context, {"hoststream.message_count": counts[traceparent]})
        for traceparent, span_context in parents.items()
    ]


def batch_span(
    name: str,
    headers_per_message: Iterable[KafkaHeaders],
    *,
    kind: SpanKind = SpanKind.CONSUMER,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> AbstractContextManager[Span | None]:
    """The current span for handling one batch of consumed messages, linked to their parents.

    A batch has many parents, so the span is not the child of any: it begins
    a trace of its own (or is the child of the span current here, if any) and
    links to the distinct spans named by the messages' ``traceparent``
    (:func:`links_from_headers`). It carries
    ``messaging.system``, ``messaging.operation.type`` and
    ``messaging.batch.message_count``. Messages produced and lines logged
    inside it carry its ids.

    With tracing off this is ``nullcontext(None)``: no header is read and no
    span is made, so a consumer loop pays nothing for it.

    Args:
        name: the span's name, e.g. ``write victoriametrics``.
        headers_per_message: each message's headers; read only when tracing is on.
        kind: CONSUMER (the default) for work on consumed messages.
        attributes: more attributes for the span.
    """
    if not tracing_enabled():
        return nullcontext(None)
    links, span_attributes = _batch_links(headers_per_message, attributes)
    return get_tracer().start_as_current_span(
        name, kind=kind, links=links, attributes=span_attributes
    )


def open_batch_span(
    name: str,
    headers_per_message: Iterable[KafkaHeaders],
    *,
    kind: SpanKind = SpanKind.CONSUMER,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Span | None:
    """:func:`batch_span` for a batch handled on more than one thread.

    The span is started but neither made current nor ended: each thread that
    works on the batch makes it current with :func:`using_span`, and the last
    one ends it. A sink writing ahead writes a batch on one thread and
    dead-letters and commits it on another, all under one span. None with
    tracing off.
    """
    if not tracing_enabled():
        return None
    links, span_attributes = _batch_links(headers_per_message, attributes)
    return get_tracer().start_span(name, kind=kind, links=links, attributes=span_attributes)


def using_span(span: Span | None, *, end: bool) -> AbstractContextManager[object]:
    """Make an :func:`open_batch_span` current here; ``end`` ends it on the way out.

    An exception leaving the block is recorded on the span and marks it failed.
    """
    if span is None:
        return nullcontext()
    return trace.use_span(span, end_on_exit=end)


def _batch_links(
    headers_per_message: Iterable[KafkaHeaders],
    attributes: Mapping[str, AttributeValue] | None,
) -> tuple[list[Link], dict[str, AttributeValue]]:
    count = 0

    def counted() -> Iterator[KafkaHeaders]:
        nonlocal count
        for headers in headers_per_message:
            count += 1
            yield headers

    links = links_from_headers(counted())
    return links, {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.batch.message_count": count,
        **(attributes or {}),
    }

"""hoststream.tracing: set-up, resource, and the traceparent header across Kafka."""

from __future__ import annotations

import re

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hoststream import __version__
from hoststream.config import Settings
from hoststream.errors import ConfigurationError
from hoststream.tracing import (
    TRACEPARENT,
    build_resource,
    configure_tracing,
    extract_context,
    flush_tracing,
    get_tracer,
    inject_traceparent,
    links_from_headers,
    otlp_endpoint,
    service_name,
    shutdown_tracing,
    tracing_enabled,
)

pytestmark = pytest.mark.usefixtures("no_otlp_environment")

# Flags: bit 0 is "sampled"; newer SDKs also set bit 1, "random trace id" (Trace Context level 2).
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def ids(span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


# --- off by default -----------------------------------------------------------


def test_without_an_endpoint_the_tracer_is_a_no_op_and_no_header_is_added() -> None:
    tracer = configure_tracing(Settings(), "producer")
    assert isinstance(tracer, trace.NoOpTracer)
    assert get_tracer() is tracer
    assert not tracing_enabled()
    with tracer.start_as_current_span("tick") as span:
        assert not span.is_recording()
        assert not span.get_span_context().is_valid
        assert inject_traceparent([]) == []
    assert flush_tracing() is True


def test_otel_sdk_disabled_wins_over_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert otlp_endpoint(Settings(otlp_endpoint="http://127.0.0.1:4318")) is None
    assert isinstance(
        configure_tracing(Settings(otlp_endpoint="http://127.0.0.1:4318"), "producer"),
        trace.NoOpTracer,
    )


def test_an_endpoint_turns_tracing_on_and_shutdown_turns_it_off() -> None:
    # Port 9 (discard) on loopback: nothing is exported because no span ends.
    tracer = configure_tracing(
        Settings(otlp_endpoint="http://127.0.0.1:9"), "producer", set_global=False
    )
    assert tracing_enabled()
    assert not isinstance(tracer, trace.NoOpTracer)
    shutdown_tracing(timeout_s=1)
    assert not tracing_enabled()
    assert isinstance(get_tracer(), trace.NoOpTracer)


# --- the endpoint -------------------------------------------------------------


def test_hoststream_endpoint_wins_over_the_standard_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert otlp_endpoint(Settings()) == "http://collector:4318"
    assert (
        otlp_endpoint(Settings(otlp_endpoint="http://127.0.0.1:14318/")) == "http://127.0.0.1:14318"
    )


def test_a_signal_path_in_the_endpoint_is_removed() -> None:
    assert otlp_endpoint(Settings(otlp_endpoint="http://h:4318/v1/traces")) == "http://h:4318"
    assert otlp_endpoint(Settings(otlp_endpoint="https://h/otlp/v1/logs")) == "https://h/otlp"


@pytest.mark.parametrize("bad", ["127.0.0.1:4317", "grpc://h:4317", "http://"])
def test_a_malformed_endpoint_names_the_setting(bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        configure_tracing(Settings(otlp_endpoint=bad), "producer")
    assert caught.value.setting == "HOSTSTREAM_OTLP_ENDPOINT"


def test_a_malformed_standard_endpoint_names_the_standard_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")
    with pytest.raises(ConfigurationError) as caught:
        otlp_endpoint(Settings())
    assert caught.value.setting == "OTEL_EXPORTER_OTLP_ENDPOINT"


def test_log_export_without_an_endpoint_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        configure_tracing(Settings(otlp_logs=True), "producer")
    assert caught.value.setting == "HOSTSTREAM_OTLP_LOGS"


# --- resource -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        ("producer", "hoststream-producer"),
        ("stream", "hoststream-stream"),
        ("sink-victoriametrics", "hoststream-sink-victoriametrics"),
        ("hoststream-api", "hoststream-api"),
    ],
)
def test_service_name_per_component(component: str, expected: str) -> None:
    assert service_name(component) == expected


def test_resource_names_service_version_and_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # OTEL_RESOURCE_ATTRIBUTES may add attributes but not override hoststream's.
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=evil,deployment.environment=ci")
    attrs = build_resource(Settings(host_id="db-7"), "sink-sql").attributes
    assert attrs["service.name"] == "hoststream-sink-sql"
    assert attrs["service.namespace"] == "hoststream"
    assert attrs["service.version"] == __version__
    assert attrs["host.name"] == "db-7"
    assert attrs["deployment.environment"] == "ci"
    assert (
        attrs["service.instance.id"]
        != build_resource(Settings(), "x").attributes["service.instance.id"]
    )


def test_exported_spans_carry_the_resource(spans: InMemorySpanExporter) -> None:
    with get_tracer().start_as_current_span("tick"):
        pass
    flush_tracing()
    [span] = spans.get_finished_spans()
    assert span.name == "tick"
    assert span.resource.attributes["service.name"] == "hoststream-producer"
    assert span.resource.attributes["host.name"] == "h1"


# --- traceparent round trip -----------------------------------------------------


def test_injected_traceparent_names_the_current_span(spans: InMemorySpanExporter) -> None:
    with get_tracer().start_as_current_span("tick") as span:
        headers = inject_traceparent([("origin", b"x")])
    names = [name for name, _ in headers]
    assert names == ["origin", TRACEPARENT]
    match = TRACEPARENT_RE.match(headers[1][1].decode())
    assert match is not None
    assert match.groups() == ids(span)
    assert int(headers[1][1][-2:], 16) & 1  # sampled


def test_inject_replaces_an_earlier_traceparent(spans: InMemorySpanExporter) -> None:
    stale = ("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")
    with get_tracer().start_as_current_span("tick") as span:
        headers = inject_traceparent([stale, ("Traceparent", b"junk")])
    assert len(headers) == 1
    assert TRACEPARENT_RE.match(headers[0][1].decode()).groups() == ids(span)


@pytest.mark.parametrize(
    "shape",
    ["confluent", "text", "mapping", "upper-case name"],
)
def test_extract_continues_the_trace_from_each_header_shape(
    spans: InMemorySpanExporter, shape: str
) -> None:
    tracer = get_tracer()
    with tracer.start_as_current_span("produce") as parent:
        [(name, value)] = inject_traceparent([])
    headers = {
        "confluent": [("other", None), (name, value)],
        "text": [(name, value.decode())],
        "mapping": {name: value},
        "upper-case name": [(name.upper(), value)],
    }[shape]
    with tracer.start_as_current_span("consume", context=extract_context(headers)) as child:
        pass
    flush_tracing()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    consume = by_name["consume"]
    assert ids(child)[0] == ids(parent)[0]
    assert consume.parent is not None
    assert consume.parent.span_id == parent.get_span_context().span_id
    assert consume.parent.is_remote


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("traceparent", None)],
        [("traceparent", b"not-a-traceparent")],
        [("traceparent", b"00-\xff" + b"1" * 31 + b"-" + b"2" * 16 + b"-01")],
    ],
)
def test_without_a_valid_traceparent_a_new_trace_begins(
    spans: InMemorySpanExporter, headers
) -> None:
    with get_tracer().start_as_current_span("consume", context=extract_context(headers)):
        pass
    flush_tracing()
    [span] = spans.get_finished_spans()
    assert span.parent is None


def test_links_are_deduplicated_and_count_their_messages(spans: InMemorySpanExporter) -> None:
    tracer = get_tracer()
    batches = []
    for _ in range(3):
        with tracer.start_as_current_span("produce"):
            batches.append(inject_traceparent([]))
    messages = [batches[0]] * 4 + [batches[1]] * 2 + [None, [("k", b"v")]] + [batches[2]]
    links = links_from_headers(messages)
    assert [link.attributes["hoststream.message_count"] for link in links] == [4, 2, 1]
    parents = [TRACEPARENT_RE.match(b[0][1].decode()).groups() for b in batches]
    got = [
        (trace.format_trace_id(link.context.trace_id), trace.format_span_id(link.context.span_id))
        for link in links
    ]
    assert got == parents
    assert all(link.context.is_remote for link in links)


def test_links_stop_at_the_limit_but_keep_counting_known_parents(
    spans: InMemorySpanExporter,
) -> None:
    tracer = get_tracer()
    batches = []
    for _ in range(5):
        with tracer.start_as_current_span("produce"):
            batches.append(inject_traceparent([]))
    links = links_from_headers([*batches, batches[0]], max_links=2)
    assert len(links) == 2
    assert [link.attributes["hoststream.message_count"] for link in links] == [2, 1]


def test_a_batch_span_with_links_is_exported_with_them(spans: InMemorySpanExporter) -> None:
    tracer = get_tracer()
    with tracer.start_as_current_span("produce"):
        headers = inject_traceparent([])
    with tracer.start_as_current_span("write", links=links_from_headers([headers, headers])):
        pass
    flush_tracing()
    write = next(s for s in spans.get_finished_spans() if s.name == "write")
    produce = next(s for s in spans.get_finished_spans() if s.name == "produce")
    assert write.parent is None
    [link] = write.links
    assert link.context.span_id == produce.context.span_id
    assert link.attributes["hoststream.message_count"] == 2

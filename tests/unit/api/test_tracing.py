"""The API's span per request, continued from the caller's traceparent; none when tracing is off."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hoststream.api.app import create_app
from hoststream.api.context import ApiContext
from hoststream.api.ratelimit import AuthFailureThrottle
from hoststream.api.tracing import instrument
from hoststream.config import Settings
from hoststream.tracing import flush_tracing
from tests.support.tracing import ids, json_lines, producer_tick

pytestmark = pytest.mark.usefixtures("no_otlp_environment")


def unreachable_context() -> ApiContext:
    """A context whose clients no request below reaches: 401s and routes of the test's own."""
    return cast(ApiContext, SimpleNamespace(auth_throttle=AuthFailureThrottle()))


def app_with_a_failing_route() -> FastAPI:
    app = create_app(Settings(), context=unreachable_context())

    @app.get("/boom")
    async def boom() -> dict[str, Any]:
        raise RuntimeError("kaboom")

    return app


def test_each_request_is_a_server_span_continuing_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    caller, headers = producer_tick()
    app = app_with_a_failing_route()
    with TestClient(app) as client:
        traceparent = headers[0][1].decode()
        assert client.get("/api/v1/hosts", headers={"traceparent": traceparent}).status_code == 401
        assert client.get("/api/v1/hosts").status_code == 401
        assert client.get("/metrics").status_code == 200
        with json_lines("hoststream.api.app") as lines:
            assert client.get("/boom").status_code == 500
    flush_tracing()
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    # /metrics is scraped too often to trace; and no extra span per send or receive.
    assert [s.name for s in server] == ["GET /api/v1/hosts", "GET /api/v1/hosts", "GET /boom"]
    assert [s.name for s in spans.get_finished_spans() if s.name != "produce metrics"] == [
        s.name for s in server
    ]
    continued, fresh, failed = server
    assert ids(continued)[0] == ids(caller)[0]
    assert continued.parent.span_id == caller.get_span_context().span_id
    assert fresh.parent is None
    assert ids(fresh)[0] != ids(caller)[0]
    assert continued.attributes["http.route"] == "/api/v1/hosts"
    assert continued.attributes["http.status_code"] == 401
    assert continued.resource.attributes["service.name"] == "hoststream-producer"  # the fixture's
    assert failed.status.status_code is StatusCode.ERROR
    [line] = [line for line in lines if line["msg"].startswith("unhandled error")]
    assert (line["trace_id"], line["span_id"]) == ids(failed)


def test_without_tracing_the_app_is_not_instrumented() -> None:
    app = create_app(Settings(), context=unreachable_context())
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert instrument(app) is False
    with TestClient(app) as client:
        assert client.get("/api/v1/hosts").status_code == 401

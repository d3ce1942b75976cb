"""`hoststream api` exporting a span per request to the real Jaeger, and its /metrics."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from typing import Any

import httpx

from hoststream.config import Settings
from hoststream.stack.jaeger import Jaeger
from tests.support.metrics_table import documented_metrics
from tests.support.paths import REPO
from tests.support.processes import free_port, scrape, stop


def trace_of(jaeger: Jaeger, trace_id: str, timeout_s: float = 15) -> list[dict[str, Any]]:
    """The spans of ``trace_id`` with their service names, once Jaeger has any."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{jaeger.address}/api/traces/{trace_id}", timeout=10)
        if response.status_code == 200 and response.json()["data"]:
            [trace] = response.json()["data"]
            return [
                {**span, "service": trace["processes"][span["processID"]]["serviceName"]}
                for span in trace["spans"]
            ]
        if time.monotonic() > deadline:
            return []
        time.sleep(0.5)


def test_each_request_is_a_span_of_the_callers_trace_and_metrics_grow(
    services: Settings, jaeger: Jaeger, unique: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HOSTSTREAM_OTLP_ENDPOINT": jaeger.otlp_endpoint,
        "HOSTSTREAM_HOST_ID": f"obs-{unique}",
        "HOSTSTREAM_LOG_FORMAT": "json",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hoststream", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        before = None
        while before is None:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the API did not answer within 30 s"
            before = scrape(port)
            time.sleep(0.3)
        # A request with a caller's traceparent, repeated until Jaeger shows one of
        # them: the first export may land before Jaeger's OTLP receiver settles.
        sent: dict[str, str] = {}
        spans: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not spans:
            assert time.monotonic() < deadline, f"Jaeger has none of {sorted(sent)}"
            trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
            sent[trace_id] = parent_id
            response = httpx.get(
                f"{base}/api/v1/health",
                headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
                timeout=10,
            )
            assert response.status_code in (200, 503)
            for candidate, candidate_parent in sent.items():
                spans = trace_of(jaeger, candidate, timeout_s=2)
                if spans:
                    trace_id, parent_id = candidate, candidate_parent
                    break
        assert httpx.get(f"{base}/api/v1/hosts", timeout=10).status_code == 401
        after = scrape(port)
    finally:
        stop(process)

    assert [(s["service"], s["operationName"]) for s in spans] == [
        ("hoststream-api", "GET /api/v1/health")
    ]
    [span] = spans
    assert [(r["refType"], r["spanID"]) for r in span["references"]] == [("CHILD_OF", parent_id)]

    assert after is not None
    for name, row in documented_metrics()["api"].items():
        assert after.metrics[name][0] == row.type, name
    requests = "hoststream_api_requests_total"
    assert after.metrics[requests][1] >= before.metrics.get(requests, ("", 0.0))[1] + 2

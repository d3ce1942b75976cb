"""`hoststream produce` exporting to a real Jaeger, and the traceparent its messages carry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx

from hoststream.config import Settings
from hoststream.producers.agent import COLLECT_SPAN, PRODUCE_SPAN
from hoststream.schemas.records import FAMILIES
from hoststream.stack.jaeger import Jaeger
from hoststream.topics import metric_topic
from tests.support.kafka import drain


def produce(services: Settings, prefix: str, host_id: str, otlp: str | None) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HOSTSTREAM_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    }
    env.update(
        {
            "HOSTSTREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
            "HOSTSTREAM_SCHEMA_REGISTRY_URL": services.schema_registry_url or "",
            "HOSTSTREAM_TOPIC_PREFIX": prefix,
            "HOSTSTREAM_TOPIC_PARTITIONS": "1",
            "HOSTSTREAM_HOST_ID": host_id,
            "HOSTSTREAM_LOG_FORMAT": "json",
        }
    )
    if otlp is not None:
        env["HOSTSTREAM_OTLP_ENDPOINT"] = otlp
    proc = subprocess.run(
        [sys.executable, "-m", "hoststream", "produce", "--interval", "1", "--duration", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def tags(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in items}


def producer_traces(jaeger: Jaeger, host_id: str, expected: int) -> list[dict[str, Any]]:
    """Traces of hoststream-producer whose process is ``host_id``; waits for ``expected``."""
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(
            f"{jaeger.address}/api/traces",
            params={"service": "hoststream-producer", "limit": 1000, "lookback": "1h"},
            timeout=10,
        )
        response.raise_for_status()
        found = [
            t
            for t in response.json()["data"]
            if any(tags(p["tags"]).get("host.name") == host_id for p in t["processes"].values())
        ]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_producer_spans_reach_jaeger_and_messages_carry_their_traceparent(
    services: Settings, jaeger: Jaeger, unique: str
) -> None:
    prefix, host_id = f"{unique}.", f"obs-{unique}"
    stderr = produce(services, prefix, host_id, jaeger.otlp_endpoint)

    # 3 s at 1 s: 3 ticks, or 2 if the run began just after one.
    traces = producer_traces(jaeger, host_id, expected=2)
    assert len(traces) >= 2, f"{len(traces)} producer trace(s) in Jaeger"
    produce_spans: dict[str, str] = {}  # trace id -> the tick span's id
    for found in traces:
        by_name = {s["operationName"]: s for s in found["spans"]}
        assert set(by_name) == {PRODUCE_SPAN, COLLECT_SPAN}
        tick, collect = by_name[PRODUCE_SPAN], by_name[COLLECT_SPAN]
        assert tags(tick["tags"])["span.kind"] == "producer"
        assert tags(tick["tags"])["messaging.batch.message_count"] == len(FAMILIES)
        assert [(r["refType"], r["spanID"]) for r in collect["references"]] == [
            ("CHILD_OF", tick["spanID"])
        ]
        process = found["processes"][tick["processID"]]
        assert process["serviceName"] == "hoststream-producer"
        assert tags(process["tags"])["service.namespace"] == "hoststream"
        produce_spans[found["traceID"]] = tick["spanID"]

    settings = services.model_copy(update={"topic_prefix": prefix})
    messages = drain(settings, [metric_topic(settings, f) for f in FAMILIES], idle_s=3)
    assert len(messages) == len(FAMILIES) * len(traces)
    for message in messages:
        headers = dict(message.headers() or [])
        version, trace_id, span_id, flags = headers["traceparent"].decode().split("-")
        assert version == "00"
        assert int(flags, 16) & 1, "sampled"
        assert trace_id in produce_spans, "the message's trace is not in Jaeger"
        assert span_id == produce_spans[trace_id]

    # Lines logged inside a tick (the registry look-ups of the first one, say)
    # name that tick's trace and span.
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    for line in lines:
        if line["trace_id"] is not None:
            assert line["trace_id"] in produce_spans, line
            assert line["span_id"] == produce_spans[line["trace_id"]], line


def test_without_an_endpoint_messages_have_no_trace_header(
    services: Settings, jaeger: Jaeger, unique: str
) -> None:
    prefix, host_id = f"{unique}.", f"obs-{unique}"
    stderr = produce(services, prefix, host_id, otlp=None)
    settings = services.model_copy(update={"topic_prefix": prefix})
    messages = drain(settings, [metric_topic(settings, "cpu")], idle_s=3)
    assert messages
    assert all(not m.headers() for m in messages)
    assert producer_traces(jaeger, host_id, expected=0) == []
    # JSON log lines (if any were logged) keep the keys, empty: there is no span.
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert all(line["trace_id"] is None and line["span_id"] is None for line in lines)

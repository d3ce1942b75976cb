"""Hosts and latest values of samples that went producer -> Kafka -> VM sink -> VictoriaMetrics."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.producers.agent import HostEvents, create_metric_topics
from hoststream.producers.collectors import RecordedSource, default_collectors
from hoststream.producers.publisher import EventPublisher
from hoststream.schemas import MetricEvent, codec_for
from hoststream.sinks import build_sink
from tests.support.paths import DATA

SNAPSHOT = DATA / "debian12_vm_2cpu.json"
HOST_LABELS = {"role": "api-test"}


def vm_series_count(settings: Settings, host: str) -> int:
    # force_flush makes just-ingested samples searchable without waiting for the
    # in-memory buffer's periodic flush.
    httpx.get(f"{settings.vm_url}/internal/force_flush", timeout=10).raise_for_status()
    response = httpx.get(
        f"{settings.vm_url}/api/v1/query",
        params={"query": f'count({{job="hoststream",instance="{host}"}})', "nocache": "1"},
        timeout=10,
    )
    response.raise_for_status()
    result = response.json()["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def run_vm_sink_until(settings: Settings, group: str, done: Callable[[], bool]) -> None:
    stop = threading.Event()
    consumer = build_sink("victoriametrics", settings, registry=CollectorRegistry(), group_id=group)
    worker = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    worker.start()
    deadline = time.monotonic() + 45
    try:
        while not done():
            assert worker.is_alive(), "the VictoriaMetrics sink stopped early"
            assert time.monotonic() < deadline, "the VM sink did not store the samples in 45 s"
            time.sleep(0.5)
    finally:
        stop.set()
        worker.join(30)


@pytest.fixture(scope="module")
def stored_host(api_server) -> tuple[str, int, list[MetricEvent]]:
    """A host whose recorded snapshot went through Kafka and the VM sink: (id, ms, events)."""
    settings = api_server.settings
    host = f"api-latest-{uuid.uuid4().hex[:8]}"
    # Recent, because an instant query only looks back 5 minutes.
    timestamp_ms = int(time.time() * 1000) - 20_000
    # The clock stamps every family with that instant, so times compare exactly.
    source = HostEvents(
        default_collectors(RecordedSource.from_file(SNAPSHOT)),
        host,
        HOST_LABELS,
        clock=lambda: timestamp_ms / 1000,
    )
    events = list(source.events(timestamp_ms, 10_000))
    create_metric_topics(settings, source.families)
    publisher = EventPublisher(settings, codec_for(settings, MetricEvent).serializer)
    for event in events:
        assert publisher.publish(event)
    assert publisher.flush(30) == 0
    total = sum(len(e.samples) for e in events)
    run_vm_sink_until(settings, f"{host}-vm", lambda: vm_series_count(settings, host) == total)
    return host, timestamp_ms, events


def test_hosts_lists_the_host_with_its_newest_sample_time(api_server, stored_host) -> None:
    host, timestamp_ms, _ = stored_host
    response = api_server.get("/api/v1/hosts")
    assert response.status_code == 200, response.text
    found = [h for h in response.json() if h["host"] == host]
    assert found == [{"host": host, "last_seen": timestamp_ms}]


def test_latest_returns_exactly_what_the_collectors_produced(api_server, stored_host) -> None:
    host, timestamp_ms, events = stored_host
    assert sorted(e.family for e in events) == ["cpu", "disk", "memory", "network", "system"]
    for event in events:
        response = api_server.get(f"/api/v1/metrics/{event.family}/latest", params={"host": host})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["host"], body["family"]) == (host, event.family)
        got = sorted(
            (s["name"], sorted(s["labels"].items()), s["value"], s["timestamp"])
            for s in body["samples"]
        )
        want = sorted(
            (s.name, sorted({**HOST_LABELS, **s.labels}.items()), s.value, timestamp_ms)
            for s in event.samples
        )
        assert got == want, event.family


def test_unknown_family_is_404(api_server, stored_host) -> None:
    host, _, _ = stored_host
    response = api_server.get("/api/v1/metrics/gpu/latest", params={"host": host})
    assert response.status_code == 404
    assert "unknown family" in response.json()["detail"]


def test_host_without_data_is_404(api_server) -> None:
    response = api_server.get(
        "/api/v1/metrics/cpu/latest", params={"host": f"nobody-{uuid.uuid4().hex[:8]}"}
    )
    assert response.status_code == 404
    assert "no recent cpu samples" in response.json()["detail"]

"""`hoststream produce` as a process: every family each interval, and a clean SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict

import httpx

from hoststream.config import Settings
from hoststream.schemas import MetricEvent, codec_for
from hoststream.schemas.records import FAMILIES
from hoststream.topics import metric_topic
from tests.support.kafka import drain


def produce_process(
    services: Settings, prefix: str, *args: str, metrics_port: int | None = None
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "HOSTSTREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "HOSTSTREAM_SCHEMA_REGISTRY_URL": services.schema_registry_url or "",
        "HOSTSTREAM_TOPIC_PREFIX": prefix,
        "HOSTSTREAM_TOPIC_PARTITIONS": "2",
        "HOSTSTREAM_HOST_ID": "real-host",
    }
    if metrics_port is not None:
        env["HOSTSTREAM_METRICS_PORT"] = str(metrics_port)
    return subprocess.Popen(
        [sys.executable, "-m", "hoststream", "produce", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_acknowledged(port: int, events: int, proc: subprocess.Popen[str]) -> None:
    """Until the producer's /metrics counts ``events`` acknowledged events (at most 90 s)."""
    deadline = time.monotonic() + 90
    total = 0.0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            text = ""
        total = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("hoststream_producer_events_total{")
        )
        if total >= events:
            return
        time.sleep(0.5)
    raise AssertionError(f"the producer acknowledged {total:g} events, not {events}")


def decode_all(settings: Settings, messages) -> list[MetricEvent]:
    decode = codec_for(settings, MetricEvent).deserializer
    return [decode(m.value(), None) for m in messages]


def test_real_host_emits_every_family_each_interval(services: Settings, unique: str) -> None:
    prefix = f"{unique}."
    proc = produce_process(services, prefix, "--interval", "5", "--duration", "30")
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    settings = services.model_copy(update={"topic_prefix": prefix})
    messages = drain(settings, [metric_topic(settings, f) for f in FAMILIES])
    events = decode_all(settings, messages)

    by_family: dict[str, list[MetricEvent]] = defaultdict(list)
    for event in events:
        by_family[event.family].append(event)
    assert set(by_family) == set(FAMILIES)
    # Each event carries the instant its family was read: just after the
    # aligned tick it belongs to (collection starts on :00, :05, ...).
    ticks = {e.timestamp_ms - e.timestamp_ms % 5000 for e in events}
    assert len(ticks) >= 5  # 30 s at 5 s: 6 ticks, 5 if the run started just after one
    assert all(e.timestamp_ms % 5000 < 1000 for e in events)
    assert any(e.timestamp_ms % 5000 != 0 for e in events)  # read times, not the tick's
    for family, family_events in by_family.items():
        family_events.sort(key=lambda e: e.seq)
        # Every family at every tick, numbered without gaps.
        assert {e.timestamp_ms - e.timestamp_ms % 5000 for e in family_events} == ticks, family
        assert [e.seq for e in family_events] == list(range(len(family_events)))
        assert all(e.samples for e in family_events)
        assert all(e.host == "real-host" and e.interval_ms == 5000 for e in family_events)


def test_sigterm_flushes_every_acknowledged_event(services: Settings, unique: str) -> None:
    prefix = f"{unique}."
    port = free_port()
    proc = produce_process(services, prefix, "--interval", "1", metrics_port=port)
    # Stop once 25 events were acknowledged (five ticks), however long start-up takes.
    wait_for_acknowledged(port, 25, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    match = re.search(r"produced (\d+) events", err.replace("\n", " "))
    assert match, err
    produced = int(match.group(1))
    assert produced >= 5 * 5
    settings = services.model_copy(update={"topic_prefix": prefix})
    messages = drain(settings, [metric_topic(settings, f) for f in FAMILIES], expected=produced)
    # Exactly what was reported: nothing lost at exit, nothing sent twice.
    assert len(messages) == produced
    drained_more = drain(settings, [metric_topic(settings, f) for f in FAMILIES], idle_s=3)
    assert len(drained_more) == produced


def test_the_agent_runs_without_what_it_does_not_need(services: Settings, unique: str) -> None:
    # The agent's process image holds the collectors, the Avro encoder and
    # librdkafka: not the settings' pydantic models, not the command line's
    # typer, not the registry client's HTTP stacks, not NumPy, not asyncio
    # (confluent-kafka's serializing clients), not fastavro's container codecs.
    port = free_port()
    proc = produce_process(services, f"{unique}.", "--interval", "1", metrics_port=port)
    try:
        wait_for_acknowledged(port, 10, proc)
        with open(f"/proc/{proc.pid}/maps", encoding="utf-8") as maps:
            mapped = maps.read()
        with open(f"/proc/{proc.pid}/environ", "rb") as environ:
            variables = environ.read().split(b"\0")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "cimpl" in mapped  # librdkafka's binding: the agent itself is what was read
    for absent in (
        "pydantic_core",
        "numpy",
        "_yaml",
        "cryptography",
        "_cffi_backend",
        "_asyncio",
        "cramjam",
    ):
        assert absent not in mapped, absent
    assert b"MALLOC_ARENA_MAX=2" in variables
    assert b"MALLOC_MMAP_THRESHOLD_=131072" in variables
    assert "produced" in err

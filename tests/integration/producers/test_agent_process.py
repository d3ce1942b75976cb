"""`hoststream produce` as a process: every family each interval, and a clean SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict

from hoststream.config import Settings
from hoststream.schemas import MetricEvent, codec_for
from hoststream.schemas.records import FAMILIES
from hoststream.topics import metric_topic
from tests.support.kafka import drain


def produce_process(services: Settings, prefix: str, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "HOSTSTREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "HOSTSTREAM_SCHEMA_REGISTRY_URL": services.schema_registry_url or "",
        "HOSTSTREAM_TOPIC_PREFIX": prefix,
        "HOSTSTREAM_TOPIC_PARTITIONS": "2",
        "HOSTSTREAM_HOST_ID": "real-host",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "hoststream", "produce", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
    proc = produce_process(services, prefix, "--interval", "1")
    time.sleep(8)
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

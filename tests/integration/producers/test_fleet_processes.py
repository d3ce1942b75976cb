"""`hoststream produce --simulate-hosts N --processes K` against the real broker and registry.

Whatever the number of processes, every record sent is the one the simulated
fleet gives for its host and instant, and every host is sent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from hoststream.config import Settings
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import MetricEvent, codec_for
from hoststream.schemas.records import FAMILIES
from hoststream.topics import metric_topic
from tests.support.kafka import drain

pytestmark = pytest.mark.integration

HOSTS = 9
SEED = 17


def run_fleet(services: Settings, prefix: str, processes: int) -> tuple[list[MetricEvent], str]:
    env = {
        **os.environ,
        "HOSTSTREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "HOSTSTREAM_SCHEMA_REGISTRY_URL": services.schema_registry_url or "",
        "HOSTSTREAM_TOPIC_PREFIX": prefix,
        "HOSTSTREAM_TOPIC_PARTITIONS": "2",
    }
    args = ["--simulate-hosts", str(HOSTS), "--seed", str(SEED), "--speedup", "50"]
    args += ["--processes", str(processes), "--duration", "12"]
    proc = subprocess.run(
        [sys.executable, "-m", "hoststream", "produce", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    err = proc.stderr
    assert proc.returncode == 0, err[-2000:]
    settings = services.model_copy(update={"topic_prefix": prefix})
    produced = re.search(r"produced ([0-9]+) events", err)
    assert produced, err[-2000:]
    topics = [metric_topic(settings, family) for family in FAMILIES]
    messages = drain(settings, topics, expected=int(produced.group(1)))
    decode = codec_for(settings, MetricEvent).deserializer
    return [decode(m.value(), None) for m in messages], err


def as_records(events: list[MetricEvent]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (
            e.host,
            e.family,
            e.timestamp_ms,
            tuple((s.name, tuple(sorted(s.labels.items())), s.value, s.kind) for s in e.samples),
        )
        for e in events
    )


def test_two_processes_send_what_one_process_sends(services: Settings, unique: str) -> None:
    one, _ = run_fleet(services, f"{unique}.one.", 1)
    two, err = run_fleet(services, f"{unique}.two.", 2)

    # The console wraps the exit line wherever its width falls.
    line = " ".join(err.split())
    assert "unacknowledged at exit 0" in line
    assert "failed 0," in line
    fleet = SimulatedFleet(HOSTS, seed=SEED)
    index = {host: i for i, host in enumerate(fleet.host_ids)}
    for event in one + two:
        expected = fleet.samples(index[event.host], event.family, event.timestamp_ms)
        assert event.samples == expected, (event.host, event.family, event.timestamp_ms)
    # Both runs sent every host and family; the instants both sent whole (a run
    # may stop in the middle of a tick) hold the same records.
    for events in (one, two):
        assert {(e.host, e.family) for e in events} == {
            (host, family) for host in fleet.host_ids for family in FAMILIES
        }
    whole_ticks = [
        {ts for ts, n in Counter(e.timestamp_ms for e in events).items() if n == HOSTS * 5}
        for events in (one, two)
    ]
    shared = whole_ticks[0] & whole_ticks[1]
    assert shared
    assert as_records([e for e in one if e.timestamp_ms in shared]) == as_records(
        [e for e in two if e.timestamp_ms in shared]
    )

"""The real collectors on this machine: no services, just psutil and /proc."""

from __future__ import annotations

import os
import sys
import time

import pytest

from hoststream.producers.collectors import LiveSource, default_collectors
from hoststream.schemas.records import FAMILIES, MetricKind, Sample

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture(scope="module")
def collected():
    return {c.family: c.collect() for c in default_collectors(LiveSource())}


def values(samples: list[Sample], name: str) -> list[float]:
    return [s.value for s in samples if s.name == name]


def test_every_family_yields_samples(collected):
    assert list(collected) == list(FAMILIES)
    for family, samples in collected.items():
        assert samples, family
        assert all(s.name.startswith("node_") for s in samples)
        assert all(s.value >= 0 for s in samples), family


def test_cpu_is_sane(collected):
    samples = collected["cpu"]
    assert len({s.labels["cpu"] for s in samples}) == os.cpu_count()
    uptime = time.time() - values(collected["system"], "node_boot_time_seconds")[0]
    for cpu in {s.labels["cpu"] for s in samples}:
        total = sum(s.value for s in samples if s.labels["cpu"] == cpu)
        # The modes of one CPU add up to (about) the time since boot.
        assert 0.5 * uptime < total < 1.1 * uptime + 10
    assert {s.kind for s in samples} == {MetricKind.COUNTER}


def test_memory_is_sane(collected):
    memory = {s.name: s.value for s in collected["memory"]}
    total = memory["node_memory_MemTotal_bytes"]
    assert total > 64 * 1024 * 1024
    assert 0 < memory["node_memory_MemAvailable_bytes"] <= total
    assert 0 < memory["node_memory_MemFree_bytes"] <= total
    assert memory["node_memory_SwapFree_bytes"] <= memory["node_memory_SwapTotal_bytes"]


def test_disk_is_sane(collected):
    samples = collected["disk"]
    sizes = {tuple(s.labels.items()): s.value for s in samples if s.name.endswith("size_bytes")}
    assert sizes, "no filesystem reported"
    for labels, size in sizes.items():
        mine = {s.name: s.value for s in samples if tuple(s.labels.items()) == labels}
        assert mine["node_filesystem_avail_bytes"] <= mine["node_filesystem_free_bytes"] <= size
    assert any(s.name == "node_disk_read_bytes_total" for s in samples), "no block device"


def test_network_and_system_are_sane(collected):
    assert values(collected["network"], "node_network_receive_bytes_total")
    system = collected["system"]
    boot = values(system, "node_boot_time_seconds")[0]
    assert time.time() - 10 * 365 * 86400 < boot < time.time()
    assert values(system, "node_load1")[0] >= 0
    states = {s.labels["state"]: s.value for s in system if s.name == "node_processes_state"}
    assert sum(states.values()) >= 1  # at least this process
    assert values(system, "node_forks_total")[0] > 0


def test_collect_is_cheap():
    collectors = default_collectors(LiveSource())
    for c in collectors:
        c.collect()  # warm up psutil's caches
    started = time.perf_counter()
    for c in collectors:
        c.collect()
    # Runs every 10 s on every host; measured here at about 1.5 ms for 100
    # processes. A generous bound that still catches an accidental O(n^2) or a
    # per-process psutil call.
    assert time.perf_counter() - started < 0.5

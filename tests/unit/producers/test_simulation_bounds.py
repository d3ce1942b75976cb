"""Simulated hosts look like real ones: same series, physical bounds, realistic behaviour."""

from __future__ import annotations

import itertools

import pytest

from hoststream.producers.collectors import HostFiles, default_collectors
from hoststream.producers.collectors.names import CPU_MODES, MEMINFO_FIELDS, PROCESS_STATES_ALWAYS
from hoststream.producers.simulation import SimulatedFleet
from hoststream.producers.simulation.activity import Activity
from hoststream.schemas.records import FAMILIES, MetricKind, Sample
from tests.support.paths import DATA

T0 = 1_795_790_000_000
INTERVAL = 10_000


def key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample.name, tuple(sorted(sample.labels.items()))


@pytest.fixture(scope="module")
def fleet():
    return SimulatedFleet(40, seed=3)


def test_simulated_series_are_real_ones_with_the_same_label_names_and_kinds(fleet, vm):
    real = {}
    for collector in default_collectors(vm, files=HostFiles(DATA / "host")):
        for s in collector.collect():
            real[(collector.family, s.name)] = (tuple(sorted(s.labels)), s.kind)

    simulated = {}
    for index in range(len(fleet)):
        for family in FAMILIES:
            for s in fleet.samples(index, family, T0):
                simulated[(family, s.name)] = (tuple(sorted(s.labels)), s.kind)

    # Simulated hosts send the core of what a real host sends (the series the
    # fleet dashboards and alert rules read), not every node_exporter series.
    assert simulated.items() <= real.items()
    assert {name for _, name in simulated} >= {"node_cpu_seconds_total", "node_load1"}


def test_every_family_and_series_is_present_for_every_host(fleet):
    for index in range(len(fleet)):
        p = fleet.profile(index)
        by_family = {f: fleet.samples(index, f, T0) for f in FAMILIES}
        assert len(by_family["cpu"]) == p.cores * len(CPU_MODES)
        assert len(by_family["memory"]) == len(MEMINFO_FIELDS)
        assert len(by_family["disk"]) == 7 * len(p.filesystems) + 9 * len(p.block_devices)
        assert len(by_family["network"]) == 8 * len(p.interfaces)
        assert len(by_family["system"]) == 10 + len(PROCESS_STATES_ALWAYS)  # uname info too
        for samples in by_family.values():
            assert len({key(s) for s in samples}) == len(samples)


def test_hosts_differ_in_size(fleet):
    profiles = [fleet.profile(i) for i in range(len(fleet))]

    cores = {p.cores for p in profiles}
    assert min(cores) >= 2
    assert max(cores) <= 64
    assert len(cores) >= 4
    assert len({p.memory_bytes for p in profiles}) == len(profiles)
    assert {len(p.interfaces) for p in profiles} >= {2, 4}  # lo + eth, or lo + 2 ports + bond
    assert {len(p.block_devices) for p in profiles} == {1, 2}
    assert len({p.role for p in profiles}) >= 4


def walk(fleet, index, family, start_ms, steps, step_ms=INTERVAL):
    for k in range(steps):
        ts = start_ms + k * step_ms
        yield ts, {key(s): s for s in fleet.samples(index, family, ts)}


def test_counters_are_monotonic_except_at_reboots(fleet):
    resets = 0
    for index in range(0, len(fleet), 4):
        activity = fleet.model(index).activity
        for family in ("cpu", "disk", "network", "system"):
            # Two days at 10 min steps, then 10 minutes at 10 s steps.
            stamps = [T0 + k * 600_000 for k in range(288)] + [
                T0 + 288 * 600_000 + k * INTERVAL for k in range(60)
            ]
            for before_ts, ts in itertools.pairwise(stamps):
                before = {key(s): s for s in fleet.samples(index, family, before_ts)}
                after = fleet.samples(index, family, ts)
                if activity.boot_time(ts / 1000) != activity.boot_time(before_ts / 1000):
                    resets += 1
                    continue
                for s in after:
                    if s.kind is MetricKind.COUNTER:
                        assert s.value >= before[key(s)].value, (index, key(s), ts)
    assert resets > 0, "no simulated host rebooted in two days; the test proves little"


def test_reboot_resets_counters_and_boot_time():
    fleet = SimulatedFleet(200, seed=3)
    flaky = next(i for i in range(200) if fleet.profile(i).activity.reboot_period_s < 86_400)
    activity: Activity = fleet.model(flaky).activity
    t = T0 / 1000
    boot = activity.boot_time(t)
    # Step until the next reboot.
    while activity.boot_time(t) == boot:
        t += 60
    before = {key(s): s.value for s in fleet.samples(flaky, "network", int((t - 60) * 1000))}
    after = {key(s): s.value for s in fleet.samples(flaky, "network", int(t * 1000))}
    system = {s.name: s.value for s in fleet.samples(flaky, "system", int(t * 1000))}

    assert system["node_boot_time_seconds"] == activity.boot_time(t) > boot
    assert t - system["node_boot_time_seconds"] <= 60
    bytes_key = next(k for k in after if k[0] == "node_network_receive_bytes_total")
    assert after[bytes_key] < before[bytes_key]


def test_cpu_seconds_grow_by_at_most_cores_times_interval(fleet):
    for index in range(len(fleet)):
        cores = fleet.profile(index).cores
        a = {key(s): s.value for s in fleet.samples(index, "cpu", T0)}
        b = {key(s): s.value for s in fleet.samples(index, "cpu", T0 + INTERVAL)}
        if b[next(iter(b))] < a[next(iter(a))]:
            continue  # rebooted in between
        growth = sum(b[k] - a[k] for k in a)
        assert growth == pytest.approx(cores * INTERVAL / 1000, rel=1e-6)
        for cpu in range(cores):
            per_cpu = [b[k] - a[k] for k in a if ("cpu", str(cpu)) in k[1]]
            assert all(g >= 0 for g in per_cpu)
            assert sum(per_cpu) == pytest.approx(INTERVAL / 1000, rel=1e-6)


def test_gauges_stay_within_physical_bounds(fleet):
    for index in range(len(fleet)):
        for ts, _ in [(T0 + k * 3_600_000, None) for k in range(0, 24 * 14, 5)]:
            memory = {s.name: s.value for s in fleet.samples(index, "memory", ts)}
            total = memory["node_memory_MemTotal_bytes"]
            for field in ("MemFree", "MemAvailable", "Buffers", "Cached", "SReclaimable", "Shmem"):
                assert 0 <= memory[f"node_memory_{field}_bytes"] <= total, field
            assert memory["node_memory_MemFree_bytes"] <= memory["node_memory_MemAvailable_bytes"]
            assert (
                0 <= memory["node_memory_SwapFree_bytes"] <= memory["node_memory_SwapTotal_bytes"]
            )

            disk = fleet.samples(index, "disk", ts)
            for mount in {s.labels["mountpoint"] for s in disk if "mountpoint" in s.labels}:
                fs = {s.name: s.value for s in disk if s.labels.get("mountpoint") == mount}
                size = fs["node_filesystem_size_bytes"]
                assert (
                    0
                    <= fs["node_filesystem_avail_bytes"]
                    <= fs["node_filesystem_free_bytes"]
                    <= size
                )
                assert 0 <= fs["node_filesystem_files_free"] <= fs["node_filesystem_files"]

            system = fleet.samples(index, "system", ts)
            assert all(s.value >= 0 for s in system)
            boot = next(s.value for s in system if s.name == "node_boot_time_seconds")
            assert boot <= ts / 1000


def test_busier_by_day_than_by_night(fleet):
    day_minus_night = []
    for index in range(len(fleet)):
        p = fleet.profile(index)
        if p.role == "batch":
            continue  # batch hosts work at night
        activity = fleet.model(index).activity
        peak = p.activity.peak_hour_utc * 3600
        midnight = T0 // 1000 - (T0 // 1000) % 86_400
        day = activity.level(midnight + peak)
        night = activity.level(midnight + (peak + 12 * 3600) % 86_400)
        day_minus_night.append(day - night)
    assert sum(d > 0 for d in day_minus_night) >= 0.8 * len(day_minus_night)


def test_episodes_drive_cpu_high(fleet):
    """Spikes: within a day some host spends a 10 s interval above 85 % busy."""
    busiest = 0.0
    for index in range(0, len(fleet), 2):
        capacity = fleet.profile(index).cores * INTERVAL / 1000
        for ts in range(T0, T0 + 86_400_000, 300_000):
            a = {key(s): s.value for s in fleet.samples(index, "cpu", ts)}
            b = {key(s): s.value for s in fleet.samples(index, "cpu", ts + INTERVAL)}
            idle = sum(b[k] - a[k] for k in a if ("mode", "idle") in k[1])
            if idle >= 0:  # not across a reboot
                busiest = max(busiest, 1 - idle / capacity)
    assert busiest > 0.85


def test_filesystems_fill_over_time(fleet):
    for index in range(0, len(fleet), 5):
        root = next(f for f in fleet.profile(index).filesystems if f.mountpoint == "/")
        step_ms = int(root.fill_period_s * 1000) // 20
        frees = []
        for k in range(10):
            disk = fleet.samples(index, "disk", T0 + k * step_ms)
            frees.append(next(
                s.value for s in disk
                if s.name == "node_filesystem_free_bytes" and s.labels["mountpoint"] == "/"
            ))  # fmt: skip
        # Over half a fill period free space shrinks at every step but at most
        # one, where the clean-up falls.
        shrinking = sum(b < a for a, b in itertools.pairwise(frees))
        assert shrinking >= 8, index

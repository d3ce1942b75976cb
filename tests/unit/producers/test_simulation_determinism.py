"""Simulated values depend on (seed, host, timestamp) only, not on call order or process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

from hoststream.producers.fleet_processes import shard
from hoststream.producers.simulation import FleetValues, SimulatedFleet, host_id, make_profile
from hoststream.producers.simulation.hashing import derive, unit, units
from hoststream.schemas.records import MetricEvent

T0 = 1_795_790_000_000  # 2026-11-27 14:33:20 UTC
INTERVAL = 10_000


def snapshot(events: Iterable[MetricEvent]) -> list[tuple[Any, ...]]:
    return [
        (
            e.host,
            e.family,
            e.timestamp_ms,
            [(s.name, dict(s.labels), s.value, s.kind) for s in e.samples],
        )
        for e in events
    ]


def test_same_seed_same_events():
    a = SimulatedFleet(20, seed=5)
    b = SimulatedFleet(20, seed=5)

    for tick in range(3):
        ts = T0 + tick * INTERVAL
        assert snapshot(a.events(ts, INTERVAL)) == snapshot(b.events(ts, INTERVAL))


def test_call_order_does_not_matter():
    forward = SimulatedFleet(6, seed=5)
    backward = SimulatedFleet(6, seed=5)
    stamps = [T0 + k * 3_600_000 for k in range(0, 24 * 7, 13)]  # across a week, reboots too

    ahead = {ts: snapshot(forward.events(ts, INTERVAL)) for ts in stamps}
    behind = {
        ts: snapshot(backward.events(ts, INTERVAL, indices=reversed(range(6))))
        for ts in reversed(stamps)
    }

    for ts in stamps:
        assert sorted(ahead[ts], key=str) == sorted(behind[ts], key=str)


def test_different_seeds_differ():
    a = snapshot(SimulatedFleet(5, seed=1).events(T0, INTERVAL))
    b = snapshot(SimulatedFleet(5, seed=2).events(T0, INTERVAL))

    assert [e[0] for e in a] != [e[0] for e in b]  # ids carry the seed
    assert [e[3] for e in a] != [e[3] for e in b]


def test_another_process_with_another_hash_seed_gives_the_same_values():
    code = (
        "import json, sys\n"
        "from producers.simulation import SimulatedFleet\n"
        f"events = SimulatedFleet(4, seed=9).events({T0}, {INTERVAL})\n"
        "print(json.dumps([[e.host, e.family, [[s.name, s.labels, s.value] for s in e.samples]]"
        " for e in events]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
        cwd=os.getcwd(),
    )  # fmt: skip

    here = [
        [e.host, e.family, [[s.name, dict(s.labels), s.value] for s in e.samples]]
        for e in SimulatedFleet(4, seed=9).events(T0, INTERVAL)
    ]
    assert json.loads(result.stdout) == json.loads(json.dumps(here))


def test_host_ids_and_labels():
    fleet = SimulatedFleet(3, seed=42)

    assert list(fleet.host_ids) == ["sim-s42-h00000", "sim-s42-h00001", "sim-s42-h00002"]
    assert host_id(42, 12345) == "sim-s42-h12345"
    event = next(iter(fleet.events(T0, INTERVAL)))
    assert event.host == "sim-s42-h00000"
    assert event.host_labels["simulated"] == "true"
    assert set(event.host_labels) == {"simulated", "role", "region"}
    assert make_profile(42, 1) == make_profile(42, 1)


def test_seq_counts_events_per_host_and_family():
    fleet = SimulatedFleet(2, seed=1, families=("cpu", "system"))

    first = list(fleet.events(T0, INTERVAL))
    second = list(fleet.events(T0 + INTERVAL, INTERVAL, indices=[1]))

    assert [(e.host[-1], e.family, e.seq) for e in first] == [
        ("0", "cpu", 0), ("0", "system", 0), ("1", "cpu", 0), ("1", "system", 0),
    ]  # fmt: skip
    assert [(e.host[-1], e.family, e.seq) for e in second] == [("1", "cpu", 1), ("1", "system", 1)]
    assert {e.interval_ms for e in first} == {INTERVAL}
    assert {e.timestamp_ms for e in second} == {T0 + INTERVAL}


def test_hash_helpers_are_uniform_and_independent():
    key = derive(7, 1, 2)
    draws = [unit(key, n) for n in range(20_000)]

    assert all(0.0 <= d < 1.0 for d in draws)
    assert abs(sum(draws) / len(draws) - 0.5) < 0.01
    assert len(set(draws)) == len(draws)
    assert derive(7, 1, 2) != derive(7, 2, 1)
    assert all(0.0 <= u < 1.0 for u in units(key, 3))


def fleet_digest(fleet: SimulatedFleet, stamps: Iterable[int]) -> str:
    digest = hashlib.sha256()
    for ts in stamps:
        for e in fleet.events(ts, INTERVAL):
            digest.update(
                json.dumps(
                    [
                        e.host,
                        e.family,
                        e.timestamp_ms,
                        e.seq,
                        sorted(e.host_labels.items()),
                        e.region,
                        [
                            [s.name, sorted(s.labels.items()), float(s.value).hex(), s.kind.value]
                            for s in e.samples
                        ],
                    ]
                ).encode()
            )
    return digest.hexdigest()


def test_a_seed_gives_the_fleet_it_always_gave():
    # The digest of the fleet written before the simulation computed values
    # without Sample objects (and with NumPy for the counters): the same bytes.
    fleet = SimulatedFleet(12, seed=5, region="eu-west-1")
    stamps = [T0 + k * INTERVAL for k in (0, 1, 2, 8_640, 60_480)]

    assert (
        fleet_digest(fleet, stamps)
        == "cb380bb85d8fe48dc37091bb1d2ab75008e8d458817cd98fb31570c5f999683b"
    )


def records(events: Iterable[MetricEvent]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (
            e.host,
            e.family,
            e.timestamp_ms,
            tuple((s.name, tuple(sorted(s.labels.items())), s.value, s.kind) for s in e.samples),
        )
        for e in events
    )


@pytest.mark.parametrize("processes", [2, 3])
def test_shards_of_the_fleet_together_send_what_one_process_sends(processes: int):
    hosts = 7
    stamps = [T0 + k * INTERVAL for k in (0, 1, 2, 361)]
    whole = records(
        values.event()
        for ts in stamps
        for values in FleetValues(SimulatedFleet(hosts, seed=4)).events(ts, INTERVAL)
    )
    shards = [
        FleetValues(SimulatedFleet(hosts, seed=4), shard(hosts, k, processes))
        for k in range(processes)
    ]
    together = records(
        values.event()
        for ts in stamps
        for source in shards
        for values in source.events(ts, INTERVAL)
    )

    assert together == whole
    assert len(whole) == hosts * 5 * len(stamps)


def test_event_values_are_the_events():
    fleet = SimulatedFleet(3, seed=2)
    twin = SimulatedFleet(3, seed=2)
    for ts in (T0, T0 + INTERVAL):
        as_values = [v.event() for v in fleet.event_values(ts, INTERVAL)]
        assert as_values == list(twin.events(ts, INTERVAL))


def test_a_host_alone_gives_what_the_fleet_gives_at_once():
    # A fleet's tick hashes every host's jitter in one NumPy pass; one host's
    # samples, asked alone, take the scalar path: the same values, bit for bit.
    fleet, alone = SimulatedFleet(40, seed=3), SimulatedFleet(40, seed=3)
    for k in range(0, 40 * 24 * 360, 5_557):  # six weeks, reboots included
        ts = T0 + k * INTERVAL
        for event in fleet.events(ts, INTERVAL):
            index = fleet.host_ids.index(event.host)
            assert alone.samples(index, event.family, ts) == event.samples


def test_batches_give_the_values_of_the_events_bit_for_bit():
    # A batch computes its hosts' counters in columns, the events host by host.
    fleet, twin = SimulatedFleet(30, seed=6), SimulatedFleet(30, seed=6)
    for k in range(0, 30 * 24 * 360, 7_919):  # a month, reboots included
        ts = T0 + k * INTERVAL
        batched = [
            (values.template.host, values.template.family, [float(v).hex() for v in values.values])
            for batch in fleet.event_batches(ts, INTERVAL, hosts_per_batch=7)
            for values in batch.event_values()
        ]
        alone = [
            (e.host, e.family, [float(s.value).hex() for s in e.samples])
            for e in twin.events(ts, INTERVAL)
        ]
        assert batched == alone

"""A regional stream worker on the real broker and registry: its region on every record."""

from __future__ import annotations

import dataclasses
import time

from prometheus_client import CollectorRegistry

from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.windows import DEFAULT_WINDOWS
from tests.support.streams import MIN, closers, fleet_events, key_of, produce, read_aggregates

GRACE_S = 10


def test_a_regional_worker_stamps_its_region_on_every_aggregate(
    stream_settings, start_worker, monkeypatch
) -> None:
    # A day ahead, as in test_worker: every window closes on event time only.
    now = time.time_ns() // 1_000_000 + 86_400_000
    base = now - now % (5 * MIN)
    # Events from a producer of the region carry it too; the worker stamps its own.
    events = [dataclasses.replace(e, region="region-a") for e in fleet_events(base, minutes=6)]
    events += closers(base + 25 * MIN)
    produce(stream_settings, events)
    aggregator = WindowAggregator(
        DEFAULT_WINDOWS, grace_ms=GRACE_S * 1000, metrics=StreamMetrics(CollectorRegistry())
    )
    states: dict = {}
    want = set()
    for event in events:
        state = states.setdefault(
            (event.host, event.family), aggregator.new_state(event.host, event.family)
        )
        want |= {key_of(a) for a in aggregator.add(state, event).aggregates}

    monkeypatch.setenv("HOSTSTREAM_REGION", "region-a")
    worker = start_worker("--grace", str(GRACE_S), "--session-timeout", "10")
    records = read_aggregates(stream_settings, DEFAULT_WINDOWS, len(want), [worker])
    assert {key_of(a) for _, _, a in records} == want
    assert {a.region for _, _, a in records} == {"region-a"}

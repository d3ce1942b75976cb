"""The whole pipeline on real services: simulated hosts -> producer -> Kafka ->
stream processor -> sinks -> VictoriaMetrics and PostgreSQL, with a sink killed,
PostgreSQL stopped for 20 s and poison messages on the way. Nothing is lost,
nothing is stored twice, and the aggregates equal an independent reference.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Producer

from hoststream.config import Settings
from hoststream.kafka import producer_config
from hoststream.producers.agent import create_metric_topics
from hoststream.producers.publisher import EventPublisher
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import MetricEvent, MetricKind, codec_for
from hoststream.stack import Stack
from hoststream.topics import metric_topic
from tests.support.kafka import drain
from tests.support.paths import STATE_DIR
from tests.support.pipeline import Component, sql_rows, vm_raw_samples, wait_for
from tests.support.reference import counter_rate, expected, windows_of
from tests.support.services import PORT_OFFSET

INTERVAL_MS = 10_000
WINDOW_MS = 60_000
TICKS = 18  # three minutes of data
POISON = [b"not avro at all", b"\x00\x00\x00\x00", b"\xc3\x01" + b"\x07" * 8 + b"junk"]


@pytest.mark.skipif(
    bool(os.environ.get("HOSTSTREAM_KAFKA_BOOTSTRAP")) and not (STATE_DIR / "stack.env").exists(),
    reason="stops and starts the local stack's PostgreSQL",
)
def test_pipeline_loses_nothing_through_a_sink_crash_a_database_outage_and_poison(
    services: Settings, unique: str, tmp_path: Path
) -> None:
    settings = services.model_copy(update={"topic_prefix": f"{unique}."})
    seed = random.randrange(10_000, 99_999)
    fleet = SimulatedFleet(4, seed=seed)
    hosts = list(fleet.host_ids)
    t0 = (int(time.time() * 1000) // WINDOW_MS - 20) * WINDOW_MS
    events: list[MetricEvent] = [
        e for tick in range(TICKS) for e in fleet.events(t0 + tick * INTERVAL_MS, INTERVAL_MS)
    ]
    create_metric_topics(settings, fleet.families)
    publisher = EventPublisher(settings, codec_for(settings, MetricEvent).serializer)
    half = len(events) // 2
    for event in events[:half]:
        assert publisher.publish(event)
    assert publisher.flush(30) == 0
    poison = Producer(producer_config(settings))
    for value in POISON:
        poison.produce(metric_topic(settings, "cpu"), key=hosts[0].encode(), value=value)
    assert poison.flush(10) == 0

    env = {
        **os.environ,
        "HOSTSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "HOSTSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOSTSTREAM_SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "HOSTSTREAM_VM_URL": settings.vm_url,
        "HOSTSTREAM_SQL_DSN": settings.sql_dsn.get_secret_value(),
    }
    stream = Component(
        ["stream", "--windows", "1m", "--grace", "5", "--no-alerts"], env, tmp_path / "stream.log"
    )
    vm_sink = Component(["sink", "victoriametrics"], env, tmp_path / "vm.log")
    sql_sink = Component(["sink", "sql"], env, tmp_path / "sql.log")
    components = [stream, vm_sink, sql_sink]
    [postgres] = [
        s for s in Stack(STATE_DIR, port_offset=PORT_OFFSET).services() if s.name == "postgres"
    ]
    try:
        for component in components:
            component.start()
        # The VictoriaMetrics sink dies mid-stream (SIGKILL: no flush, no commit).
        wait_for(lambda: len(vm_raw_samples(settings, hosts)) > 0, 90, "the first raw samples")
        vm_sink.kill()
        for event in events[half:]:
            assert publisher.publish(event)
        assert publisher.flush(30) == 0
        vm_sink.start()

        # PostgreSQL goes away for 20 s once aggregates are flowing.
        wait_for(lambda: len(sql_rows(settings, hosts)) > 0, 120, "the first aggregates in SQL")
        postgres.stop()
        time.sleep(20)
        assert sql_sink.alive(), (tmp_path / "sql.log").read_text()[-3000:]
        postgres.start()

        # Reference: every raw sample, and every window of every series.
        # VictoriaMetrics series carry the host's static labels; aggregates are
        # per series of the host, labelled by the sample's own labels.
        produced: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
        per_series: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
        kinds: dict[tuple, MetricKind] = {}
        for event in events:
            for sample in event.samples:
                labels = {**event.host_labels, **sample.labels}
                point = (event.timestamp_ms, float(sample.value))
                produced[(event.host, sample.name, tuple(sorted(labels.items())))].append(point)
                key = (event.host, sample.name, tuple(sorted(sample.labels.items())))
                per_series[key].append(point)
                kinds[key] = sample.kind
        produced_count = sum(len(points) for points in produced.values())
        reference = {
            (host, name, labels, start): (points, kinds[(host, name, labels)])
            for (host, name, labels), series in per_series.items()
            for start, points in windows_of(series, WINDOW_MS).items()
        }

        def raw_complete() -> bool:
            return sum(len(p) for p in vm_raw_samples(settings, hosts).values()) >= produced_count

        wait_for(raw_complete, 180, "every raw sample in VictoriaMetrics")

        def aggregates_complete() -> bool:
            rows = [
                r for r in sql_rows(settings, hosts) if r["metric"] != "hoststream_cpu_busy_ratio"
            ]
            return len(rows) >= len(reference)

        wait_for(aggregates_complete, 180, "every window aggregate in PostgreSQL")
        for component in components:
            assert component.alive(), component.log.read_text()[-3000:]
    except AssertionError as failure:
        # The tmp folder may be gone by the time someone reads the report.
        tails = "\n".join(f"--- {c.log.name}:\n{c.log.read_text()[-2500:]}" for c in components)
        raise AssertionError(f"{failure}\n{tails}") from failure
    finally:
        for component in components:
            component.stop()
        if postgres.running_pid() is None:
            postgres.start()

    # Raw samples: exactly what was produced, none lost, none twice, despite the kill.
    stored = vm_raw_samples(settings, hosts)
    stored_count = sum(len(points) for points in stored.values())
    assert stored_count == produced_count
    sample_key = next(iter(produced))
    vm_key = tuple(
        sorted(
            {
                "__name__": sample_key[1],
                "instance": sample_key[0],
                "job": "hoststream",
                **dict(sample_key[2]),
            }.items()
        )
    )
    # VictoriaMetrics keeps about 12 significant digits of a float.
    want_points = sorted(produced[sample_key])
    assert [ts for ts, _ in stored[vm_key]] == [ts for ts, _ in want_points]
    for (_, got), (_, want) in zip(stored[vm_key], want_points, strict=True):
        assert math.isclose(got, want, rel_tol=1e-11), (got, want)

    # Aggregates: one row per series and window, equal to the reference.
    rows = [r for r in sql_rows(settings, hosts) if r["metric"] != "hoststream_cpu_busy_ratio"]
    assert len(rows) == len(reference)
    checked_rates = 0
    for row in rows:
        key = (
            row["host"],
            row["metric"],
            tuple(sorted(row["labels"].items())),
            row["window_start"],
        )
        points, kind = reference[key]
        want = expected(points, counter=kind is MetricKind.COUNTER)
        assert row["count"] == want.count, key
        assert row["min"] == want.min, key
        assert row["max"] == want.max, key
        assert row["last"] == want.last, key
        assert math.isclose(row["sum"], want.sum, rel_tol=1e-12, abs_tol=1e-9), key
        assert math.isclose(row["mean"], want.mean, rel_tol=1e-12, abs_tol=1e-9), key
        # DDSketch at 1% relative error.
        assert math.isclose(row["p99"], want.quantiles["p99"], rel_tol=0.0101, abs_tol=1e-9), key
        if kind is MetricKind.COUNTER and want.rate_per_second is not None:
            assert math.isclose(
                row["rate_per_second"], counter_rate(points), rel_tol=1e-9, abs_tol=1e-9
            )
            checked_rates += 1
    assert checked_rates > 0

    # Poison: dead-lettered by the VictoriaMetrics sink with the reason; every valid
    # record was stored all the same (above).
    dlq = [
        m
        for m in drain(settings, [metric_topic(settings, "cpu") + ".dlq"], idle_s=5)
        if dict(m.headers() or []).get("hoststream.dlq.sink", b"").startswith(b"victoriametrics")
    ]
    assert sorted(m.value() for m in dlq) == sorted(POISON)
    for message in dlq:
        headers = dict(message.headers())
        assert headers["hoststream.dlq.source.topic"] == metric_topic(settings, "cpu").encode()
        assert headers["hoststream.dlq.error"]

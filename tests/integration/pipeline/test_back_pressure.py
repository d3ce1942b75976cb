"""Back-pressure on real services: a burst far above what the stream processor
consumes piles up as consumer lag, which ``/metrics`` and `hoststream run`'s status
line show; nothing crashes, and once the burst is over the backlog drains and every
sample and every window arrives.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hoststream.config import Settings
from hoststream.producers.agent import create_metric_topics
from hoststream.producers.publisher import EventPublisher
from hoststream.producers.simulation import SimulatedFleet
from hoststream.run_report import Scrape, StatusLine
from hoststream.schemas import MetricEvent, codec_for
from tests.support.pipeline import (
    Component,
    component_env,
    group_lag,
    sql_rows,
    vm_raw_samples,
    wait_for,
)
from tests.support.processes import free_port

INTERVAL_MS = 10_000
WINDOW_MS = 60_000
HOSTS = 60
TICKS = 24  # four minutes of data, published at once: minutes' worth of input in a second
_STREAM_LAG = re.compile(r"lag (\S+) stream")


def test_a_burst_above_capacity_shows_as_lag_then_drains_with_every_sample_stored(
    services: Settings, unique: str, tmp_path: Path
) -> None:
    settings = services.model_copy(update={"topic_prefix": f"{unique}."})
    fleet = SimulatedFleet(HOSTS, seed=random.randrange(10_000, 99_999))
    hosts = list(fleet.host_ids)
    t0 = (int(time.time() * 1000) // WINDOW_MS - 10) * WINDOW_MS
    events = [
        e for tick in range(TICKS) for e in fleet.events(t0 + tick * INTERVAL_MS, INTERVAL_MS)
    ]
    produced = sum(len(e.samples) for e in events)
    windows = {
        (
            e.host,
            s.name,
            tuple(sorted(s.labels.items())),
            e.timestamp_ms - e.timestamp_ms % WINDOW_MS,
        )
        for e in events
        for s in e.samples
    }
    create_metric_topics(settings, fleet.families)
    env = component_env(settings)
    stream_port = free_port()
    stream = Component(
        ["stream", "--windows", "1m", "--grace", "5", "--no-alerts"],
        # Lag sampled twice a second, and batches of 50 events: at its default
        # batch size the worker reads the whole burst in about a second on an idle
        # machine, before its first commit, and the lag never shows.
        {
            **env,
            "HOSTSTREAM_METRICS_PORT": str(stream_port),
            "HOSTSTREAM_STREAM_LAG_INTERVAL_S": "0.5",
            "HOSTSTREAM_STREAM_BATCH_SIZE": "50",
        },
        tmp_path / "stream.log",
    )
    sink_ports = [free_port(), free_port()]
    sinks = [
        Component(
            ["sink", kind], {**env, "HOSTSTREAM_METRICS_PORT": str(port)}, tmp_path / f"{kind}.log"
        )
        for kind, port in zip(("victoriametrics", "sql"), sink_ports, strict=True)
    ]
    components = [stream, *sinks]
    ports = [stream_port, *sink_ports]
    try:
        for component in components:
            component.start()
        wait_for(lambda: group_lag(ports) is not None, 120, "every component's /metrics")

        publisher = EventPublisher(settings, codec_for(settings, MetricEvent).serializer)
        for event in events:
            assert publisher.publish(event)
        assert publisher.flush(60) == 0

        # The backlog shows in the stream processor's /metrics and in the status line.
        status = StatusLine()
        seen: list[tuple[float, str]] = []

        def backlog_shown() -> bool:
            # One scrape for both, so the line and the gauge speak of the same instant.
            text = httpx.get(f"http://127.0.0.1:{stream_port}/metrics", timeout=2).text
            lag = sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "hoststream_stream_consumer_lag"
            )
            line, _ = status.render(10.0, [Scrape.parse(text, time.monotonic())], [])
            seen.append((lag, line))
            return lag > 0

        wait_for(backlog_shown, 60, "the stream processor's lag to show the burst")
        lag, line = seen[-1]
        shown = _STREAM_LAG.search(line)
        assert shown is not None, line
        assert shown.group(1) != "0", line

        # Drained: lag back to zero, every raw sample and every window stored.
        wait_for(lambda: group_lag(ports) == 0, 300, "the backlog to drain")

        def raw_complete() -> bool:
            return sum(len(p) for p in vm_raw_samples(settings, hosts).values()) >= produced

        wait_for(raw_complete, 180, "every raw sample in VictoriaMetrics")

        def aggregates_complete() -> bool:
            rows = [
                r for r in sql_rows(settings, hosts) if r["metric"] != "hoststream_cpu_busy_ratio"
            ]
            return len(rows) >= len(windows)

        wait_for(aggregates_complete, 180, "every window aggregate in PostgreSQL")
        for component in components:
            assert component.alive(), component.log.read_text()[-3000:]
    except AssertionError as failure:
        tails = "\n".join(f"--- {c.log.name}:\n{c.log.read_text()[-2500:]}" for c in components)
        raise AssertionError(f"{failure}\n{tails}") from failure
    finally:
        for component in components:
            component.stop()

    # Nothing lost and nothing twice.
    stored = vm_raw_samples(settings, hosts)
    assert sum(len(p) for p in stored.values()) == produced
    rows = [r for r in sql_rows(settings, hosts) if r["metric"] != "hoststream_cpu_busy_ratio"]
    assert len(rows) == len(windows)
    assert lag > 0

"""Scale-out on real services: the same fixed workload through one stream worker and
one instance of each sink, then through two of each, stores the same aggregates.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from hoststream.config import Settings
from hoststream.producers.agent import create_metric_topics
from hoststream.producers.publisher import EventPublisher
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import MetricEvent, codec_for
from tests.support.pipeline import (
    Component,
    component_env,
    group_lag,
    metric_sum,
    sql_rows,
    wait_for,
)
from tests.support.processes import free_port

INTERVAL_MS = 10_000
WINDOW_MS = 60_000
TICKS = 12  # two minutes of data


def _vm_aggregates(settings: Settings, hosts: list[str]) -> dict[tuple, list]:
    match = f'{{instance=~"{"|".join(hosts)}",__name__=~".*:.*_1m"}}'
    httpx.get(f"{settings.vm_url}/internal/force_flush", timeout=10).raise_for_status()
    response = httpx.get(f"{settings.vm_url}/api/v1/export", params={"match[]": match}, timeout=60)
    response.raise_for_status()
    out = {}
    for line in response.text.splitlines():
        row = json.loads(line)
        points = sorted(zip(row["timestamps"], row["values"], strict=True))
        out[tuple(sorted(row["metric"].items()))] = sorted(set(points))
    return out


def _forget(settings: Settings, hosts: list[str]) -> None:
    """Delete what a run stored for these hosts, so the next run starts from nothing."""
    with psycopg.connect(settings.sql_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute("DELETE FROM window_aggregates WHERE host = ANY(%s)", (hosts,))
        conn.execute("DELETE FROM alerts WHERE host = ANY(%s)", (hosts,))
    httpx.get(f"{settings.vm_url}/internal/force_flush", timeout=10).raise_for_status()
    httpx.post(
        f"{settings.vm_url}/api/v1/admin/tsdb/delete_series",
        params={"match[]": f'{{instance=~"{"|".join(hosts)}"}}'},
        timeout=30,
    ).raise_for_status()


def _owners(settings: Settings, group: str) -> int:
    """How many members of a stable consumer group own partitions (0 while it rebalances)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except KafkaException:
        return 0
    if description.state != ConsumerGroupState.STABLE:
        return 0
    return sum(1 for m in description.members if m.assignment.topic_partitions)


def _run(
    settings: Settings,
    events: list[MetricEvent],
    families: Sequence[str],
    workers: int,
    expected_rows: int,
    hosts: list[str],
    folder: Path,
    late_joiner: bool = False,
) -> tuple[list[tuple], dict[tuple, list]]:
    """The workload through ``workers`` stream workers and as many of each sink;
    returns the rows and the VictoriaMetrics aggregates stored for the hosts.

    The workers start first and the workload is published once each of them
    owns partitions, as in a running deployment. With ``late_joiner`` the
    workload is there first and the last stream worker starts only once the
    others have read all of it, so it takes over partitions read to their end.
    """
    folder.mkdir()
    create_metric_topics(settings, families)

    def publish() -> None:
        publisher = EventPublisher(settings, codec_for(settings, MetricEvent).serializer)
        for event in events:
            assert publisher.publish(event)
        assert publisher.flush(30) == 0

    env = component_env(settings)
    components: list[Component] = []
    for i in range(workers):
        components.append(
            Component(
                ["stream", "--windows", "1m", "--grace", "5", "--no-alerts"],
                # Each worker its own state folder, as on separate machines.
                {
                    **env,
                    "HOSTSTREAM_STATE_DIR": str(folder / f"stream-{i}"),
                    "HOSTSTREAM_METRICS_PORT": str(free_port()),
                },
                folder / f"stream-{i}.log",
            )
        )
    for kind in ("victoriametrics", "sql"):
        for i in range(workers):
            components.append(
                Component(
                    ["sink", kind],
                    {**env, "HOSTSTREAM_METRICS_PORT": str(free_port())},
                    folder / f"{kind}-{i}.log",
                )
            )
    streams, others = components[:workers], components[workers:]
    try:
        if late_joiner:
            publish()
        for component in others + (streams[:-1] if late_joiner else streams):
            component.start()
        if late_joiner:
            ports = [int(c.env["HOSTSTREAM_METRICS_PORT"]) for c in streams[:-1]]
            read = ("hoststream_stream_events_total",)
            wait_for(lambda: metric_sum(ports, read) == len(events), 120, "every event read")
            streams[-1].start()
        else:
            group = settings.topic("hoststream-streams")
            wait_for(lambda: _owners(settings, group) == workers, 120, "every worker assigned")
            publish()

        def stored_all() -> bool:
            rows = [
                r for r in sql_rows(settings, hosts) if r["metric"] != "hoststream_cpu_busy_ratio"
            ]
            return len(rows) >= expected_rows

        wait_for(stored_all, 300, f"every window aggregate with {workers} worker(s)")
        ports = [int(c.env["HOSTSTREAM_METRICS_PORT"]) for c in components]
        wait_for(lambda: group_lag(ports) == 0, 120, "every group's lag back to zero")
        time.sleep(5)  # the VictoriaMetrics sink's last batch
        for component in components:
            assert component.alive(), component.log.read_text()[-3000:]
        rows = sorted(
            (
                r["host"],
                r["metric"],
                json.dumps(r["labels"], sort_keys=True),
                r["window_start"],
                r["count"],
                r["sum"],
                r["min"],
                r["max"],
                r["last"],
                r["p50"],
                r["p99"],
                r["rate_per_second"],
            )
            for r in sql_rows(settings, hosts)
        )
        return rows, _vm_aggregates(settings, hosts)
    except AssertionError as failure:
        tails = "\n".join(f"--- {c.log.name}:\n{c.log.read_text()[-2000:]}" for c in components)
        raise AssertionError(f"{failure}\n{tails}") from failure
    finally:
        for component in components:
            component.stop()


# A worker that joins once the first has read everything takes over partitions
# read to their end: it must still see them as caught up and close their windows.
@pytest.mark.parametrize("late_joiner", [False, True], ids=["together", "second-joins-late"])
def test_two_workers_per_group_store_the_same_aggregates_as_one(
    services: Settings, unique: str, tmp_path: Path, late_joiner: bool
) -> None:
    seed = random.randrange(10_000, 99_999)
    fleet = SimulatedFleet(6, seed=seed)
    hosts = list(fleet.host_ids)
    t0 = (int(time.time() * 1000) // WINDOW_MS - 20) * WINDOW_MS
    events = [
        e for tick in range(TICKS) for e in fleet.events(t0 + tick * INTERVAL_MS, INTERVAL_MS)
    ]
    series_windows = {
        (
            e.host,
            s.name,
            tuple(sorted(s.labels.items())),
            e.timestamp_ms - e.timestamp_ms % WINDOW_MS,
        )
        for e in events
        for s in e.samples
    }
    try:
        one = _run(
            services.model_copy(update={"topic_prefix": f"{unique}.one."}),
            events,
            fleet.families,
            1,
            len(series_windows),
            hosts,
            tmp_path / "one",
        )
        _forget(services, hosts)
        two = _run(
            services.model_copy(update={"topic_prefix": f"{unique}.two."}),
            events,
            fleet.families,
            2,
            len(series_windows),
            hosts,
            tmp_path / "two",
            late_joiner,
        )
    finally:
        _forget(services, hosts)
    assert len(one[0]) >= len(series_windows) > 0
    assert two[0] == one[0]
    assert one[1]
    _assert_same_series(two[1], one[1])


def _assert_same_series(got: dict[tuple, list], expected: dict[tuple, list]) -> None:
    """The same series with the same timestamps and values, to VictoriaMetrics' precision.

    VictoriaMetrics stores a block's values as decimals with a shared exponent, so
    the same float written in another block can come back different in its 16th
    significant digit (372551338.666667 against 372551338.66666704).
    """
    assert got.keys() == expected.keys()
    for series, points in expected.items():
        assert [t for t, _ in got[series]] == [t for t, _ in points], series
        for (_, value), (_, want) in zip(got[series], points, strict=True):
            assert math.isclose(value, want, rel_tol=1e-12, abs_tol=1e-12), (series, value, want)

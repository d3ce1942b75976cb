"""The stores' floor under one window's aggregates: what latency cannot go below.

When a window ends, every host's window of that size closes at once: the
stream processor emits one aggregate per series, the VictoriaMetrics sink
writes each as about ten series' samples (count, sum, min, max, mean, last,
p50, p90, p95, p99 and a counter's rate), the SQL sink one row. However fast
the pipeline's own parts, those rows and samples must be stored before the
window's last aggregate is readable, and window end -> stored is at least
grace + that time.

This suite hands the two stores one window's aggregates of a simulated fleet
(``BENCH_FLOOR_HOSTS``, default 2,000 hosts with the default families, one
aggregate per series), encoded before the clock starts in the sinks' own
wire formats: Prometheus remote write (snappy) in requests of at most
:data:`~sinks.victoriametrics.REMOTE_WRITE_REQUEST_SERIES` series with as
many in flight as the VictoriaMetrics sink keeps (4; ``BENCH_FLOOR_VM_REQUEST_SERIES``,
``BENCH_FLOOR_VM_IN_FLIGHT`` change them); COPY text into the
staging table and the sink's upsert in batches of the SQL sink's size, over
``BENCH_FLOOR_SQL_CONNECTIONS`` connections (default 2, two sink
instances). It times, each with a window of its own (new rows, and after the
first pass existing VictoriaMetrics series, as a steady fleet's next window):

1. VictoriaMetrics alone, its series new if this VictoriaMetrics has not
   seen the fleet before (``new_series`` counts them: a fleet's first window);
2. VictoriaMetrics alone, its series existing;
3. PostgreSQL alone;
4. both at once, as they run in the pipeline.

No Kafka, no stream processor, no sink code runs while the clock runs: the
figure is the stores' own part, the floor for the latency target of window
end -> stored <= grace + 3 s (``floor_vs_latency_budget``: the time both
stores took at once over those 3 s; above 1 no implementation of the
pipeline's own parts can meet the target on this machine).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cramjam
import httpx
import psycopg
from psycopg import sql

from bench.common import (
    Result,
    code_version,
    load_note,
    proc_cpu_seconds,
    proc_tree_cpu_seconds,
    settings_for,
)
from bench.sinks import _settle, _vm_pid, stack_pid
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import MetricKind, WindowAggregate
from hoststream.sinks.consumer import BatchPolicy
from hoststream.sinks.sql import SqlSink, copy_statement, staging_statements, upsert_statement
from hoststream.sinks.sql_copy import COPY_COLUMNS, copy_text
from hoststream.sinks.victoriametrics import REMOTE_WRITE_REQUEST_SERIES
from hoststream.sinks.vm_remote_write import write_request
from hoststream.sinks.vm_series import aggregate_lines

#: The latency target's allowance beyond grace: window end -> stored <= grace + 3 s.
BUDGET_S = 3.0
WINDOW_MS = 60_000
#: Remote-write requests the VictoriaMetrics sink keeps in flight (its default).
VM_IN_FLIGHT = 4
_WINDOWS = ("vm_first_window", "vm_existing_series", "postgres", "both")


def _window_aggregates(hosts: int, window_start: int) -> list[WindowAggregate]:
    """One aggregate per series of ``hosts`` simulated hosts, its window from ``window_start``."""
    fleet = SimulatedFleet(hosts, seed=424_242)
    out: list[WindowAggregate] = []
    for event in fleet.events(window_start + WINDOW_MS - 10_000):
        for sample in event.samples:
            value = float(sample.value)
            counter = sample.kind is MetricKind.COUNTER
            out.append(
                WindowAggregate(
                    host=event.host,
                    metric=sample.name,
                    labels=dict(sample.labels),
                    kind=sample.kind,
                    window_size_ms=WINDOW_MS,
                    window_start=window_start,
                    window_end=window_start + WINDOW_MS,
                    count=6,
                    sum=6 * value,
                    min=value,
                    max=value,
                    mean=value,
                    last=value,
                    p50=value,
                    p90=value,
                    p95=value,
                    p99=value,
                    quantile_relative_error=0.01,
                    rate_per_second=0.5 if counter else None,
                    region=event.region,
                )
            )
    return out


def _vm_requests(
    aggregates: Sequence[WindowAggregate], request_series: int
) -> tuple[list[bytes], int]:
    """Snappy remote-write bodies of about ``request_series`` series; the samples."""
    per_aggregate = [len(aggregate_lines(a)) for a in aggregates[:1000]]
    series_each = max(1, round(sum(per_aggregate) / len(per_aggregate)))
    step = max(1, request_series // series_each)
    bodies, samples = [], 0
    for i in range(0, len(aggregates), step):
        chunk = aggregates[i : i + step]
        samples += sum(len(aggregate_lines(a)) for a in chunk)
        bodies.append(bytes(cramjam.snappy.compress_raw(write_request(chunk))))
    return bodies, samples


def _series_count(vm_url: str) -> int:
    response = httpx.get(f"{vm_url}/api/v1/series/count", timeout=60)
    response.raise_for_status()
    return int(response.json()["data"][0])


def _send_vm(vm_url: str, bodies: list[bytes], in_flight: int) -> None:
    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }
    local = threading.local()

    def post(body: bytes) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=120)
        response = client.post(f"{vm_url}/api/v1/write", content=body, headers=headers)
        response.raise_for_status()

    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(post, bodies))


def _pg_batches(aggregates: Sequence[WindowAggregate]) -> list[bytes]:
    size = BatchPolicy().max_records
    return [copy_text(aggregates[i : i + size]) for i in range(0, len(aggregates), size)]


def _store_pg(connections: list[psycopg.Connection[Any]], batches: list[bytes]) -> None:
    """The SQL sink's transaction per batch: COPY into the staging table, then the upsert."""
    table = "window_aggregates"

    def store(worker: int) -> None:
        conn = connections[worker]
        for batch in batches[worker :: len(connections)]:
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy(copy_statement(table, COPY_COLUMNS)) as copy:
                    copy.write(batch)
                cursor.execute(upsert_statement(table))

    with ThreadPoolExecutor(len(connections)) as pool:
        list(pool.map(store, range(len(connections))))


def _timed(
    work: Callable[[], None], pids: dict[str, int | None], tree: set[str]
) -> dict[str, float]:
    """Wall seconds of ``work`` and the CPU seconds each of ``pids`` spent meanwhile."""

    def cpu(name: str, pid: int) -> float:
        return proc_tree_cpu_seconds(pid) if name in tree else proc_cpu_seconds(pid)

    before = {name: cpu(name, pid) for name, pid in pids.items() if pid is not None}
    own = time.process_time()
    started = time.monotonic()
    work()
    figures = {"seconds": round(time.monotonic() - started, 2)}
    for name, pid in pids.items():
        if pid is not None:
            figures[f"{name}_cpu_seconds"] = round(cpu(name, pid) - before[name], 2)
    figures["bench_process_cpu_seconds"] = round(time.process_time() - own, 2)
    return figures


def _connections(dsn: str, schema: str, count: int) -> Iterator[psycopg.Connection[Any]]:
    for _ in range(count):
        conn = psycopg.connect(dsn)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        for statement in staging_statements("window_aggregates", cockroach=False):
            conn.execute(statement)
        conn.commit()
        yield conn


def run(env: dict[str, str]) -> list[Result]:
    settings = settings_for(env)
    hosts = int(os.environ.get("BENCH_FLOOR_HOSTS", "2000"))
    sql_connections = int(os.environ.get("BENCH_FLOOR_SQL_CONNECTIONS", "2"))
    request_series = int(
        os.environ.get("BENCH_FLOOR_VM_REQUEST_SERIES", str(REMOTE_WRITE_REQUEST_SERIES))
    )
    in_flight = int(os.environ.get("BENCH_FLOOR_VM_IN_FLIGHT", str(VM_IN_FLIGHT)))
    vm_url = settings.vm_url.rstrip("/")
    pids = {"victoriametrics": _vm_pid(settings), "postgresql": stack_pid(settings, "postgres")}
    # Windows of the past hour (inside VictoriaMetrics' and the validation's
    # bounds), one per pass: new rows in each, as a steady fleet's next window.
    first = (int(time.time() * 1000) - 3_600_000) // WINDOW_MS * WINDOW_MS
    windows = {name: first + i * WINDOW_MS for i, name in enumerate(_WINDOWS)}
    prepared = {}
    for name, start in windows.items():
        aggregates = _window_aggregates(hosts, start)
        bodies, samples = _vm_requests(aggregates, request_series)
        prepared[name] = (len(aggregates), bodies, samples, _pg_batches(aggregates))
    rows, _, samples, _ = prepared["both"]
    dsn = settings.sql_dsn.get_secret_value()
    schema = f"bench_floor_{uuid.uuid4().hex[:8]}"
    SqlSink(dsn, schema=schema).migrate()
    figures: dict[str, Any] = {
        "hosts": hosts,
        "aggregates_per_window": rows,
        "victoriametrics_samples_per_window": samples,
        "victoriametrics_requests_per_window": len(prepared["both"][1]),
        "sql_connections": sql_connections,
        "victoriametrics_requests_in_flight": in_flight,
    }
    connections = list(_connections(dsn, schema, sql_connections))
    try:
        for name in _WINDOWS:
            _, bodies, _, batches = prepared[name]
            if pids["victoriametrics"] is not None:
                _settle(vm_url, pids["victoriametrics"])
            if name.startswith("vm_"):
                work: Callable[[], None] = lambda b=bodies: _send_vm(vm_url, b, in_flight)  # noqa: E731
            elif name == "postgres":
                work = lambda b=batches: _store_pg(connections, b)  # noqa: E731
            else:

                def work(b: list[bytes] = bodies, p: list[bytes] = batches) -> None:
                    with ThreadPoolExecutor(2) as pool:
                        vm = pool.submit(_send_vm, vm_url, b, in_flight)
                        pg = pool.submit(_store_pg, connections, p)
                        vm.result()
                        pg.result()

            series_before = _series_count(vm_url) if name == "vm_first_window" else 0
            figures[name] = _timed(work, pids, {"postgresql"})
            if name == "vm_first_window":
                figures[name]["new_series"] = _series_count(vm_url) - series_before
    finally:
        for conn in connections:
            conn.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    both = figures["both"]["seconds"]
    ratios = {
        "floor_vs_latency_budget": both / BUDGET_S,
        "postgres_alone_vs_latency_budget": figures["postgres"]["seconds"] / BUDGET_S,
        "victoriametrics_alone_vs_latency_budget": figures["vm_existing_series"]["seconds"]
        / BUDGET_S,
    }
    notes = [
        f"one 1m window's aggregates of {hosts:,} simulated hosts (seed 424242, default "
        f"families): {rows:,} aggregates, {samples:,} VictoriaMetrics samples; every pass a "
        "window of its own in the past hour, VictoriaMetrics settled (flushed, its merges "
        "done) before each",
        "VictoriaMetrics: remote write as the sink sends it (sorted labels, snappy), "
        f"requests of about {request_series:,} series, {in_flight} in "
        "flight; PostgreSQL: the SQL sink's transaction per batch of "
        f"{BatchPolicy().max_records:,} rows (COPY text into the staging table, one "
        f"INSERT ... SELECT ... ON CONFLICT) over {sql_connections} connection(s), into a "
        "schema of its own dropped afterwards; all encoded before the clock starts",
        "seconds: wall time of the pass; *_cpu_seconds: the process' own CPU (PostgreSQL "
        "with its backends) over the pass; floor_vs_latency_budget: both stores at once "
        f"over the {BUDGET_S:.0f} s the latency target leaves after grace",
        f"{load_note()}; code: {code_version()}",
    ]
    return [
        Result(
            name="store_floor",
            workload="one window's aggregates handed, pre-encoded, to VictoriaMetrics and "
            "PostgreSQL: the stores' own time, the floor under window end -> stored",
            data_size=f"{rows:,} aggregates, {samples:,} VictoriaMetrics samples ({hosts:,} hosts)",
            figures=figures,
            ratios=ratios,
            notes=notes,
        )
    ]

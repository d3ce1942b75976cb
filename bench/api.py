"""API latency: ``GET /api/v1/aggregates`` at a fixed request rate over a loaded table.

Rows go straight into ``public.window_aggregates`` (the table the API reads)
under host ids of their own, and are deleted afterwards. The API runs as
``hoststream api`` in its own process; requests leave on an open-loop
schedule (request i at t0 + i/rate whatever the answers before it), and a
latency runs from the scheduled instant to the answer, so a stall shows as
the queue it causes. The baseline sends the same queries through psycopg
(``api.store.fetch_aggregates`` on a pool of the API's size) at the same rate.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from bench.common import (
    REPO,
    Result,
    code_version,
    free_port,
    load_note,
    panels_plot,
    percentile,
    scale,
    settings_for,
)
from hoststream.api.auth import issue_jwt
from hoststream.api.store import AggregateQuery, fetch_aggregates
from hoststream.sinks.sql_rows import AGGREGATE_COLUMNS

ROWS = 200_000
HOSTS = 100
METRICS = 20
RATE = 50.0
SECONDS = 20.0
WINDOW_MS = 60_000


def _load(dsn: str, host_prefix: str, rows: int) -> tuple[list[str], list[str], int]:
    """Insert ``rows`` 1-minute aggregates; return the hosts, metrics and the last window's end."""
    windows = max(1, rows // (HOSTS * METRICS))
    end_ms = int(time.time() * 1000) // WINDOW_MS * WINDOW_MS
    hosts = [f"{host_prefix}h{i:03d}" for i in range(HOSTS)]
    metrics = [f"bench_metric_{i:02d}" for i in range(METRICS)]
    rng = random.Random(5)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            columns = ", ".join(AGGREGATE_COLUMNS)
            with cur.copy(f"COPY public.window_aggregates ({columns}) FROM STDIN") as copy:
                for host in hosts:
                    for metric in metrics:
                        for w in range(windows):
                            start = end_ms - (windows - w) * WINDOW_MS
                            value = rng.random() * 100
                            row = {
                                "host": host,
                                "metric": metric,
                                "labels_key": "{}",
                                "window_size_ms": WINDOW_MS,
                                "window_start": datetime.fromtimestamp(start / 1000, UTC),
                                "window_end": datetime.fromtimestamp(
                                    (start + WINDOW_MS) / 1000, UTC
                                ),
                                "labels": "{}",
                                "kind": "GAUGE",
                                "count": 6,
                                "sum": value * 6,
                                "min": value * 0.9,
                                "max": value * 1.1,
                                "mean": value,
                                "last": value,
                                "p50": value,
                                "p90": value * 1.05,
                                "p95": value * 1.08,
                                "p99": value * 1.1,
                                "rate_per_second": 0.01,
                                "quantile_relative_error": 0.0,  # exact: few samples
                                "region": None,
                            }
                            # In the table's column order; a column added
                            # later and missing here fails loudly.
                            copy.write_row(tuple(row[c] for c in AGGREGATE_COLUMNS))
        conn.execute("ANALYZE public.window_aggregates")
    return hosts, metrics, end_ms


def _queries(hosts: list[str], metrics: list[str], end_ms: int, n: int) -> list[AggregateQuery]:
    rng = random.Random(9)
    return [
        AggregateQuery(
            rng.choice(hosts), rng.choice(metrics), WINDOW_MS, end_ms - 3_600_000, end_ms, 500
        )
        for _ in range(n)
    ]


async def _open_loop(send: Any, queries: list[AggregateQuery], rate: float) -> dict[str, Any]:
    """Run ``send(query)`` for each query at its scheduled instant; latencies in ms."""
    latencies: list[float] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2

    async def one(i: int, query: AggregateQuery) -> None:
        at = t0 + i / rate
        await asyncio.sleep(max(0.0, at - loop.time()))
        try:
            await send(query)
        except Exception as exc:  # counted and reported, never hidden
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        latencies.append(1000 * (loop.time() - at))

    await asyncio.gather(*(one(i, q) for i, q in enumerate(queries)))
    if not latencies:
        raise SystemExit(f"every request failed, e.g. {errors[:1]}")
    return {
        "requests": len(queries),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "mean_ms": sum(latencies) / len(latencies),
    }


async def _via_api(base: str, token: str, queries: list[AggregateQuery], rate: float) -> Any:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

        async def send(q: AggregateQuery) -> None:
            response = await client.get(
                "/api/v1/aggregates",
                params={
                    "host": q.host,
                    "metric": q.metric,
                    "window": "1m",
                    "start": q.start_ms,
                    "end": q.end_ms,
                    "limit": q.limit,
                },
                timeout=30,
            )
            response.raise_for_status()
            if len(response.json()["items"]) != 60:
                raise RuntimeError(f"expected 60 rows, got {len(response.json()['items'])}")

        await _open_loop(send, queries[:50], rate)  # warm-up: connections, caches
        return await _open_loop(send, queries[50:], rate)


async def _via_psycopg(dsn: str, queries: list[AggregateQuery], rate: float) -> Any:
    # The API's own pool settings (api/app.py).
    async with AsyncConnectionPool(dsn, min_size=1, max_size=10, open=False) as pool:
        await pool.open(wait=True)

        async def send(q: AggregateQuery) -> None:
            rows, _ = await fetch_aggregates(pool, q)
            if len(rows) != 60:
                raise RuntimeError(f"expected 60 rows, got {len(rows)}")

        await _open_loop(send, queries[:50], rate)
        return await _open_loop(send, queries[50:], rate)


def run(env: dict[str, str]) -> list[Result]:
    factor = scale()
    rows = max(HOSTS * METRICS * 61, int(ROWS * factor))
    settings = settings_for(env)
    dsn = settings.sql_dsn.get_secret_value()
    host_prefix = f"benchapi{uuid.uuid4().hex[:6]}-"
    secret = secrets.token_urlsafe(32)
    port = free_port()
    api_env = {
        **env,
        "HOSTSTREAM_API_SECRET": secret,
        # The benchmark measures latency, not the per-token limit (600/min by default).
        "HOSTSTREAM_API_RATE_LIMIT_PER_MINUTE": "1000000",
        "HOSTSTREAM_LOG_LEVEL": "WARNING",
    }
    proc = None
    try:
        started = time.monotonic()
        hosts, metrics, end_ms = _load(dsn, host_prefix, rows)
        load_s = time.monotonic() - started
        print(f"api: {rows:,} rows inserted in {load_s:.0f}s", flush=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hoststream", "api", "--port", str(port)],
            env=api_env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        token = issue_jwt(SecretStr(secret), "bench", ["read:metrics"], 3600)
        n = 50 + int(RATE * SECONDS)
        queries = _queries(hosts, metrics, end_ms, n)
        ours = asyncio.run(_via_api(base, token, queries, RATE))
        print(f"api: via the API {ours}", flush=True)
        baseline = asyncio.run(_via_psycopg(dsn, queries, RATE))
        print(f"api: via psycopg {baseline}", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM public.window_aggregates WHERE host LIKE %s", (f"{host_prefix}%",)
            )
    result = Result(
        "api",
        f"GET /api/v1/aggregates (one host, one metric, 1m windows, the last hour: 60 rows) "
        f"at {RATE:g} req/s for {SECONDS:g}s, open loop, after 50 warm-up requests; baseline: "
        f"the same query through psycopg (api.store.fetch_aggregates) at the same rate",
        f"{rows:,} rows in public.window_aggregates for {HOSTS} hosts x {METRICS} metrics "
        f"(besides the table's other rows), random host and metric per request",
        figures={"api": ours, "psycopg": baseline, "rows": rows},
        ratios={
            "p50_vs_psycopg": ours["p50_ms"] / baseline["p50_ms"],
            "p99_vs_psycopg": ours["p99_ms"] / baseline["p99_ms"],
        },
        notes=[
            "latency runs from a request's scheduled instant to its answer (no coordinated "
            "omission); the client runs in the benchmark process on the same 2 CPUs",
            "the API path adds HTTP (httpx client, uvicorn), JWT verification, the rate "
            "limiter, pydantic models and JSON encoding to the same SQL; it runs with the "
            "stack's settings, so with OTLP tracing to the local collector when the stack "
            "sets HOSTSTREAM_OTLP_ENDPOINT",
            f"scale {factor:g} (BENCH_SCALE); {load_note()}; {code_version()}",
        ],
    )
    panels_plot(
        result.name,
        f"GET /api/v1/aggregates at {RATE:g} req/s, open loop, latency; lower is better",
        [
            (
                f"p{int(100 * q)}",
                ["hoststream API", "same query via psycopg"],
                [ours[f"p{int(100 * q)}_ms"], baseline[f"p{int(100 * q)}_ms"]],
                "milliseconds",
            )
            for q in (0.50, 0.99)
        ],
    )
    return [result]

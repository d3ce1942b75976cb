"""Running the pipeline's components as processes, and reading what they stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from hoststream.config import Settings

__all__ = [
    "Component",
    "component_env",
    "group_lag",
    "metric_sum",
    "sql_rows",
    "vm_raw_samples",
    "wait_for",
]


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1.0)


class Component:
    """One `hoststream` sub-command as a process, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hoststream", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def vm_raw_samples(settings: Settings, hosts: list[str]) -> dict[tuple, list[tuple[int, float]]]:
    """Every raw (node_exporter-named) sample VictoriaMetrics holds for these hosts."""
    match = f'{{job="hoststream",instance=~"{"|".join(hosts)}",__name__!~".*:.*"}}'
    httpx.get(f"{settings.vm_url}/internal/force_flush", timeout=10).raise_for_status()
    response = httpx.get(f"{settings.vm_url}/api/v1/export", params={"match[]": match}, timeout=60)
    response.raise_for_status()
    series: dict[tuple, list[tuple[int, float]]] = {}
    for line in response.text.splitlines():
        row = json.loads(line)
        key = tuple(sorted(row["metric"].items()))
        series[key] = list(zip(row["timestamps"], row["values"], strict=True))
    return series


def sql_rows(settings: Settings, hosts: list[str], window_ms: int = 60_000) -> list[dict]:
    """The window aggregates PostgreSQL holds for these hosts; [] while it cannot be read."""
    try:
        with psycopg.connect(settings.sql_dsn.get_secret_value(), connect_timeout=3) as conn:
            cur = conn.cursor(row_factory=psycopg.rows.dict_row)
            cur.execute(
                "SELECT host, metric, labels, window_size_ms, "
                "(extract(epoch FROM window_start) * 1000)::BIGINT AS window_start, "
                "count, sum, min, max, mean, last, p50, p99, rate_per_second "
                "FROM window_aggregates WHERE host = ANY(%s) AND window_size_ms = %s",
                (hosts, window_ms),
            )
            return cur.fetchall()
    except psycopg.Error:
        return []  # not migrated yet, or PostgreSQL is the one stopped on purpose


def component_env(settings: Settings) -> dict[str, str]:
    """The environment of a component process that uses ``settings``' services and prefix."""
    return {
        **os.environ,
        "HOSTSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "HOSTSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOSTSTREAM_SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "HOSTSTREAM_VM_URL": settings.vm_url,
        "HOSTSTREAM_SQL_DSN": settings.sql_dsn.get_secret_value(),
    }


def group_lag(ports: list[int]) -> float | None:
    """The consumer lag the components on these ``/metrics`` ports report, summed
    (``hoststream_stream_consumer_lag`` and ``hoststream_sink_consumer_lag``); None
    while one of them does not answer."""
    return metric_sum(ports, ("hoststream_stream_consumer_lag", "hoststream_sink_consumer_lag"))


def metric_sum(ports: list[int], names: tuple[str, ...]) -> float | None:
    """The samples named ``names`` that the components on these ``/metrics`` ports
    report, summed over ports and labels; None while one of them does not answer."""
    total = 0.0
    for port in ports:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in names:
                    total += sample.value
    return total

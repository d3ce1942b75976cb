"""Components as processes: free ports, scraping their /metrics, stopping them."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Scrape:
    """One scrape: metric name (as documented) -> (type, value summed over labels)."""

    at: float
    metrics: dict[str, tuple[str, float]]
    #: Metric name (as documented) -> (labels, value) of each of its samples.
    series: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> Scrape | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    metrics: dict[str, tuple[str, float]] = {}
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        # The parser names a counter's family without "_total"; the table (and
        # the samples) have it.
        name = f"{family.name}_total" if family.type == "counter" else family.name
        wanted = f"{family.name}_count" if family.type == "histogram" else name
        samples = [s for s in family.samples if s.name == wanted]
        metrics[name] = (family.type, sum(s.value for s in samples))
        series[name] = [(dict(s.labels), s.value) for s in samples]
    return Scrape(time.monotonic(), metrics, series)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # SIGTERM from outside: a Faust worker deadlocks when stopped from inside.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)

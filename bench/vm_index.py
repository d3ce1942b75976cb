"""VictoriaMetrics' CPU per new series and per sample, with and without its per-day index.

``python -m bench.vm_index --hosts 1500 --series 350 --rounds 2`` starts a
throwaway VictoriaMetrics (the stack's server binary, a data folder of its own
under a temporary directory, a free loopback port, the stack's dedup flag) for
each setting and round, alternating, and imports ticks of a simulated fleet
through ``/api/v1/import``: every series is new in the first tick and exists
in the next ones. It prints the server's CPU seconds (its own accounting, from
``/proc``) per new series and per sample of an existing series.

The pipeline benchmark pays the first figure for every raw and aggregate
series of a fresh fleet; a deployment pays the second for ever. Why the stack
keeps the per-day index: ``docs/sinks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import free_port, proc_cpu_seconds, stack_for_env
from hoststream.stack.victoriametrics import VictoriaMetrics

#: VictoriaMetrics' flag that keeps one global index of series and no per-day one.
NO_PER_DAY_INDEX = "-disablePerDayIndex"
#: Bytes per import request, cut at a line's end.
_REQUEST_BYTES = 16 * 1024 * 1024
#: Each series' name: a node_exporter-like name and one 1m aggregate statistic.
_NAMES = ("", ":1m_count")


def _server_binary() -> Path:
    """The VictoriaMetrics server the local stack runs."""
    for service in stack_for_env(dict(os.environ)).services():
        if isinstance(service, VictoriaMetrics):
            return service.binary()
    raise SystemExit("the stack has no VictoriaMetrics")


def _tick_body(hosts: int, series: int, timestamp_ms: int) -> bytes:
    lines = [
        json.dumps(
            {
                "metric": {
                    "__name__": f"node_bench_metric_{s % 60}{suffix}",
                    "series": str(s),
                    "instance": f"bench-host-{h:05d}",
                    "job": "hoststream",
                },
                "values": [random.random()],
                "timestamps": [timestamp_ms],
            }
        )
        for h in range(hosts)
        for s in range(series)
        for suffix in _NAMES
    ]
    return ("\n".join(lines) + "\n").encode()


def _import(client: httpx.Client, url: str, body: bytes) -> None:
    start = 0
    while start < len(body):
        end = len(body)
        if start + _REQUEST_BYTES < end:
            end = body.rfind(b"\n", start, start + _REQUEST_BYTES) + 1
        client.post(f"{url}/api/v1/import", content=body[start:end]).raise_for_status()
        start = end


@contextmanager
def throwaway_server(binary: Path, flags: list[str]) -> Iterator[tuple[str, int]]:
    """A VictoriaMetrics of its own (temporary data folder, free loopback port, the
    stack's dedup flag), answering: its URL and pid; stopped and deleted afterwards."""
    data = Path(tempfile.mkdtemp(prefix="bench-vm-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(binary),
            f"-storageDataPath={data}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-dedup.minScrapeInterval=1ms",
            "-loggerLevel=ERROR",
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"VictoriaMetrics did not start on port {port}")
            time.sleep(0.2)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def _run(binary: Path, flags: list[str], hosts: int, series: int, ticks: int) -> dict[str, Any]:
    with throwaway_server(binary, flags) as (url, pid), httpx.Client(timeout=600) as client:
        first_ms = int(time.time() * 1000) // 10_000 * 10_000 - ticks * 10_000
        cpu: list[float] = []
        for tick in range(ticks):
            body = _tick_body(hosts, series, first_ms + tick * 10_000)
            before = proc_cpu_seconds(pid)
            _import(client, url, body)
            client.get(f"{url}/internal/force_flush").raise_for_status()
            time.sleep(2)  # what the import left to background work
            cpu.append(proc_cpu_seconds(pid) - before)
    samples = hosts * series * len(_NAMES)
    later = cpu[1:] or [float("nan")]
    return {
        "flags": flags,
        "new_series": samples,
        "cpu_s_new_series": round(cpu[0], 2),
        "us_per_new_series": round(cpu[0] / samples * 1e6, 2),
        "us_per_sample_of_existing_series": round(sum(later) / len(later) / samples * 1e6, 2),
        "cpu_s_per_tick": [round(c, 2) for c in cpu],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1500)
    parser.add_argument("--series", type=int, default=350, help="series per host")
    parser.add_argument("--ticks", type=int, default=2, help="imports; the first creates")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    binary = _server_binary()
    settings = [[], [NO_PER_DAY_INDEX]]
    for _ in range(args.rounds):
        for flags in settings:
            figures = _run(binary, flags, args.hosts, args.series, args.ticks)
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()

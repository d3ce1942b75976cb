"""VictoriaMetrics' CPU per value by ingestion format, one value per series a request.

``python -m bench.vm_formats --hosts 500 --series 350 --stats 4 --rounds 2``
imports ticks of a simulated fleet into a throwaway VictoriaMetrics (the
stack's server binary, as :mod:`bench.vm_index` starts it) for each format in
turn: JSON lines (``/api/v1/import``), Prometheus text
(``/api/v1/import/prometheus``) and remote write (protobuf ``WriteRequest``,
snappy, ``/api/v1/write``), 10,000 series a request. Each series holds one
value a tick: what a live pipeline's sink sends (a raw series gets a value
every collection, an aggregate series one a window), unlike a backlog, whose
lines carry many values each. The first tick creates every series; the
server's CPU seconds (its own accounting, from ``/proc``) per value of the
later ticks are the figure that matters for a fleet that keeps running.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import cramjam
import httpx

from bench.common import proc_cpu_seconds
from bench.vm_index import _server_binary, throwaway_server
from hoststream.sinks.vm_remote_write import length_delimited, varint

#: Series per import request.
_REQUEST_SERIES = 10_000
_STATS = ("count", "sum", "min", "max", "avg", "last", "p50", "p90", "p95", "p99")

Labels = dict[str, str]


def _fleet(hosts: int, series: int, stats: int) -> list[Labels]:
    """Every series: a node_exporter-like raw series and ``stats`` of its 1m aggregates."""
    names = ["", *(f":{s}_1m" for s in _STATS[:stats])]
    return [
        {
            "__name__": f"node_bench_metric_{s % 60}{name}",
            "cpu": str(s),
            "mode": "user",
            "instance": f"sim-s10000-h{h:05d}",
            "job": "hoststream",
            "region": "region-a",
        }
        for h in range(hosts)
        for s in range(series)
        for name in names
    ]


def _json_lines(fleet: list[Labels], timestamp_ms: int) -> list[bytes]:
    return [
        json.dumps(
            {"metric": labels, "values": [random.random()], "timestamps": [timestamp_ms]}
        ).encode()
        + b"\n"
        for labels in fleet
    ]


def _prometheus_lines(fleet: list[Labels], timestamp_ms: int) -> list[bytes]:
    lines = []
    for labels in fleet:
        pairs = ",".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
        lines.append(f"{labels['__name__']}{{{pairs}}} {random.random()!r} {timestamp_ms}\n")
    return [line.encode() for line in lines]


def _remote_write_series(fleet: list[Labels], timestamp_ms: int) -> list[bytes]:
    """Each series as a ``WriteRequest.timeseries`` entry (Prometheus' remote.proto):
    labels sorted by name, then one sample (double value, int64 timestamp)."""
    out = []
    for labels in fleet:
        encoded = b"".join(
            length_delimited(
                0x0A, length_delimited(0x0A, k.encode()) + length_delimited(0x12, v.encode())
            )
            for k, v in sorted(labels.items())
        )
        sample = b"\x09" + struct.pack("<d", random.random()) + b"\x10" + varint(timestamp_ms)
        out.append(length_delimited(0x0A, encoded + length_delimited(0x12, sample)))
    return out


#: format -> (encode one tick of the fleet, series by series; import path; request headers)
FORMATS: dict[str, tuple[Callable[[list[Labels], int], list[bytes]], str, dict[str, str]]] = {
    "json": (_json_lines, "/api/v1/import", {}),
    "prometheus": (_prometheus_lines, "/api/v1/import/prometheus", {}),
    "remote-write": (
        _remote_write_series,
        "/api/v1/write",
        {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"},
    ),
}


def _requests(parts: list[bytes], compress: bool) -> Iterator[bytes]:
    for start in range(0, len(parts), _REQUEST_SERIES):
        body = b"".join(parts[start : start + _REQUEST_SERIES])
        yield bytes(cramjam.snappy.compress_raw(body)) if compress else body


def _run(fmt: str, hosts: int, series: int, stats: int, ticks: int) -> dict[str, Any]:
    encode, path, headers = FORMATS[fmt]
    fleet = _fleet(hosts, series, stats)
    with throwaway_server(_server_binary(), []) as (url, pid), httpx.Client(timeout=600) as client:
        first_ms = int(time.time() * 1000) // 10_000 * 10_000 - ticks * 10_000
        cpu: list[float] = []
        for tick in range(ticks):
            bodies = list(_requests(encode(fleet, first_ms + tick * 10_000), fmt == "remote-write"))
            before = proc_cpu_seconds(pid)
            for body in bodies:
                client.post(f"{url}{path}", content=body, headers=headers).raise_for_status()
            client.get(f"{url}/internal/force_flush").raise_for_status()
            time.sleep(3)  # what the import left to background work
            cpu.append(proc_cpu_seconds(pid) - before)
        stored = client.get(f"{url}/api/v1/series/count").json()["data"][0]
    if stored != len(fleet):
        raise SystemExit(f"{fmt}: VictoriaMetrics holds {stored} series, not {len(fleet)}")
    later = cpu[1:] or [float("nan")]
    return {
        "format": fmt,
        "series": len(fleet),
        "us_per_value_new_series": round(cpu[0] / len(fleet) * 1e6, 2),
        "us_per_value_existing_series": round(sum(later) / len(later) / len(fleet) * 1e6, 2),
        "cpu_s_per_tick": [round(c, 2) for c in cpu],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--series", type=int, default=350, help="raw series per host")
    parser.add_argument("--stats", type=int, default=4, help="aggregate series per raw one")
    parser.add_argument("--ticks", type=int, default=4, help="imports; the first creates")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for fmt in FORMATS:
            figures = _run(fmt, args.hosts, args.series, args.stats, args.ticks)
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()

"""`hoststream run`, the main job of `make run`: every component comes up, data
flows end to end, and every query of the pipeline-health and alerts dashboards
has data, zeros included (no "No data" panels on a healthy pipeline)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from hoststream.config import Settings
from hoststream.ports import COMPONENT_METRICS_PORTS

DASHBOARDS = Path(__file__).resolve().parents[3] / "deploy/grafana/provisioning/dashboards"
RUN_S = 120  # long enough for the first one-minute windows to close, even on a slow start

#: The dashboards about hoststream itself (the others show hosts' series).
PIPELINE_DASHBOARDS = ("pipeline-health.json", "alerts.json")


def vm_query(settings: Settings, expr: str) -> list[dict]:
    response = httpx.get(
        f"{settings.vm_url}/api/v1/query", params={"query": expr, "nocache": "1"}, timeout=30
    )
    assert response.status_code == 200, (expr, response.text)
    result: list[dict] = response.json()["data"]["result"]
    return result


def test_run_brings_up_every_component_and_feeds_the_pipeline_dashboard(
    services: Settings, unique: str
) -> None:
    # 10 s windows beside the default minute: windows close, and rows are stored,
    # within the run even when a loaded machine starts the worker late.
    env = {
        **os.environ,
        "HOSTSTREAM_TOPIC_PREFIX": f"{unique}.",
        "HOSTSTREAM_STREAM_WINDOWS": "10s,1m,5m",
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoststream",
            "run",
            "--duration",
            str(RUN_S),
            "--simulate-hosts",
            "3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_S + 180,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"development token \(12 h\):\s*\S+\.\S+\.\S+", run.stderr), run.stderr[-2000:]

    # The summary at the end: what flowed, and where to look next.
    summary = run.stderr[run.stderr.rindex("hoststream ran for") :]
    counts = dict(
        re.findall(
            r"^  (samples produced|samples stored|windows emitted|rows stored)"
            r" +([\d,]+)",
            summary,
            re.MULTILINE,
        )
    )
    assert sorted(counts) == [
        "rows stored",
        "samples produced",
        "samples stored",
        "windows emitted",
    ]
    assert all(int(v.replace(",", "")) > 0 for v in counts.values()), summary
    assert re.search(r"^  alerts +\d+ fired, \d+ resolved$", summary, re.MULTILINE), summary
    assert re.search(r"^  dead-lettered +0 messages$", summary, re.MULTILINE), summary
    assert re.search(r"^  API docs +http://127\.0\.0\.1:\d+/docs$", summary, re.MULTILINE)
    # VictoriaMetrics' UI where the build has it, its query API otherwise.
    fleet = re.search(r"^  metrics \((vmui|query)\) +(\S+)$", summary, re.MULTILINE)
    assert fleet, summary
    kind, link = fleet.groups()
    prefix = "/vmui/#/?g0.expr=" if kind == "vmui" else "/api/v1/query?query="
    assert link.startswith(f"{services.vm_url}{prefix}"), summary
    answer = httpx.get(link.partition("#")[0], timeout=10)
    assert answer.status_code == 200, answer.text
    if kind == "query":
        hosts = {row["metric"]["instance"] for row in answer.json()["data"]["result"]}
        assert len(hosts) >= 4, hosts  # this host and the 3 simulated ones

    # VictoriaMetrics scraped every component while it ran.
    up = vm_query(services, 'max by (component) (max_over_time(up{job="hoststream-pipeline"}[3m]))')
    components = {row["metric"]["component"]: float(row["value"][1]) for row in up}
    assert components == dict.fromkeys([*COMPONENT_METRICS_PORTS, "api"], 1.0)

    # Every query, rare events included: their counters exist from each
    # component's start at zero, so a healthy run shows 0 dropped, not "No data".
    empty = []
    panels = [
        panel
        for name in PIPELINE_DASHBOARDS
        for panel in json.loads((DASHBOARDS / name).read_text())["panels"]
    ]
    for panel in panels:
        for target in panel.get("targets", []):
            if "expr" not in target:
                continue  # SQL
            expr = target["expr"].replace('instance=~"$instance"', 'instance=~".*"')
            expr = expr.replace("$__rate_interval", "3m")
            # Rates need two scrapes inside the range: look back to the run's end.
            rows = vm_query(services, f"last_over_time(({expr})[2m:10s])")
            if not rows:
                empty.append((panel["title"], target["expr"]))
    assert empty == []


def test_run_exits_1_with_the_last_error_of_a_component_that_died(
    services: Settings, unique: str
) -> None:
    with socket.socket() as taken:
        # Another process holds the API's port: the API dies at start.
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "HOSTSTREAM_TOPIC_PREFIX": f"{unique}.",
            "HOSTSTREAM_API_PORT": str(port),
        }
        run = subprocess.run(
            # Far longer than the test waits: the run must end because the API died.
            [sys.executable, "-m", "hoststream", "run", "--duration", "600"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert run.returncode == 1, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: api exited 1: error: cannot serve the API on 127.0.0.1:{port} "
        "(HOSTSTREAM_API_PORT): Address already in use (log: "
    ), run.stderr[-3000:]

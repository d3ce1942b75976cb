"""Every query of the Grafana dashboards, run against the real VictoriaMetrics and PostgreSQL.

Two simulated hosts' samples (the producer's own simulation: node_exporter
names, labels and kinds, counters that grow) are imported into VictoriaMetrics
under this test's own instance names; each PromQL target of the fleet
dashboard must then return data for them. The host dashboard is checked on
this machine's own collections (the collectors `hoststream produce` runs),
rendered by the VictoriaMetrics sink's own ``event_lines``, with its ``job``,
``nodename`` and ``instance`` variables filled from ``node_uname_info`` as
Grafana fills them. Every other PromQL target must at least parse. The alert
dashboard's SQL runs against the SQL sink's schema, made by its migrations in
a schema of this test's own.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from hoststream.config import Settings
from hoststream.producers.agent import HostEvents, collectors_for
from hoststream.producers.simulation import SimulatedFleet
from hoststream.sinks.vm_series import event_lines

DASHBOARDS = (
    Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "provisioning" / "dashboards"
)
STEP_S = 30
STEPS = 8
RATE_INTERVAL = "2m"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARDS / f"{name}.json").read_text())
    return data


def targets(dashboard: dict[str, Any], key: str) -> list[tuple[str, str]]:
    found = []
    for panel in dashboard["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            for target in p.get("targets", []):
                if key in target:
                    found.append((p["title"], target[key]))
    return found


def substitute(query: str, instance: str, **variables: str) -> str:
    """What Grafana sends, for ``$instance`` = ``instance`` (a regex for multi-value)."""
    for name, value in {"instance": instance, **variables}.items():
        query = re.sub(rf"\$\{{{name}(?::\w+)?\}}|\${name}\b", value, query)
    return query.replace("$__rate_interval", RATE_INTERVAL).replace("$__interval", f"{STEP_S}s")


@pytest.fixture(scope="module")
def hosts(services: Settings) -> Iterator[tuple[list[str], float]]:
    """Import two simulated hosts' samples; their instance names and the last sample's time."""
    fleet = SimulatedFleet(2, seed=11)
    # Instance names of this run only, so other tests' series never answer for these.
    prefix = f"dash-{uuid.uuid4().hex[:10]}"
    rename = {h: f"{prefix}-{h}" for h in fleet.host_ids}
    now_ms = int(time.time()) // STEP_S * STEP_S * 1000
    lines = []
    for step in range(STEPS):
        ts = now_ms - (STEPS - 1 - step) * STEP_S * 1000
        for event in fleet.events(ts, STEP_S * 1000):
            for sample in event.samples:
                labels = {
                    **sample.labels,
                    "instance": rename[event.host],
                    "job": "hoststream",
                }
                rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                lines.append(f"{sample.name}{{{rendered}}} {sample.value!r} {ts}")
    response = httpx.post(
        f"{services.vm_url}/api/v1/import/prometheus", content="\n".join(lines) + "\n", timeout=30
    )
    assert response.status_code == 204, response.text
    httpx.get(f"{services.vm_url}/internal/force_flush", timeout=10)
    yield sorted(rename.values()), now_ms / 1000
    for instance in rename.values():
        httpx.post(
            f"{services.vm_url}/api/v1/admin/tsdb/delete_series",
            data={"match[]": f'{{instance="{instance}"}}'},
            timeout=30,
        )


@pytest.fixture(scope="module")
def real_host(services: Settings) -> Iterator[tuple[str, float]]:
    """This machine's collections, written as the VictoriaMetrics sink writes them.

    Eight collections of every family, stamped ``STEP_S`` apart up to now (the
    values are real reads, taken in quick succession), under an instance name
    of this run only. Yields that instance and the last sample's time.
    """
    instance = f"dash-real-{uuid.uuid4().hex[:10]}"
    source = HostEvents(collectors_for(Settings()), instance, {})
    now_ms = int(time.time()) // STEP_S * STEP_S * 1000
    lines = []
    for step in range(STEPS):
        ts = now_ms - (STEPS - 1 - step) * STEP_S * 1000
        for event in source.events(ts, STEP_S * 1000):
            for line in event_lines(replace(event, timestamp_ms=ts)):
                lines.append(json.dumps(line))
    response = httpx.post(
        f"{services.vm_url}/api/v1/import", content="\n".join(lines) + "\n", timeout=30
    )
    assert response.status_code == 204, response.text
    httpx.get(f"{services.vm_url}/internal/force_flush", timeout=10)
    yield instance, now_ms / 1000
    httpx.post(
        f"{services.vm_url}/api/v1/admin/tsdb/delete_series",
        data={"match[]": f'{{instance="{instance}"}}'},
        timeout=30,
    )


def label_values(services: Settings, variable: dict[str, Any], **filled: str) -> list[str]:
    """A ``label_values(selector, label)`` variable's options, as Grafana asks VictoriaMetrics."""
    match = re.fullmatch(r"label_values\((?:(.+), )?(\w+)\)", variable["query"]["query"])
    assert match is not None, variable
    selector, label = match.groups()
    params = {}
    if selector:
        params["match[]"] = substitute(selector, ".*", **filled)
    url = f"{services.vm_url}/api/v1/label/{label}/values"
    response = httpx.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    values: list[str] = response.json()["data"]
    return values


def query(services: Settings, expr: str, at: float) -> dict[str, Any]:
    response = httpx.post(
        f"{services.vm_url}/api/v1/query", data={"query": expr, "time": str(at)}, timeout=30
    )
    assert response.status_code == 200, f"{expr}\n{response.text}"
    body: dict[str, Any] = response.json()
    assert body["status"] == "success", body
    return body["data"]


def finite_values(data: dict[str, Any]) -> list[float]:
    if data["resultType"] == "scalar":
        return [float(data["result"][1])]
    return [
        float(series["value"][1])
        for series in data["result"]
        if not math.isnan(float(series["value"][1]))
    ]


def test_the_fleet_variables_list_the_job_and_the_hosts(services: Settings, hosts) -> None:
    instances, _ = hosts
    variables = {v["name"]: v for v in load("fleet-overview")["templating"]["list"]}
    assert "hoststream" in label_values(services, variables["job"])
    assert set(instances) <= set(label_values(services, variables["instance"], job="hoststream"))


def test_every_fleet_query_returns_data(services: Settings, hosts) -> None:
    instances, at = hosts
    dash = load("fleet-overview")
    # The fleet dashboard shows both hosts, as Grafana's regex.
    instance = "|".join(instances)
    exprs = targets(dash, "expr")
    assert len(exprs) >= 10
    empty = []
    for title, expr in exprs:
        data = query(services, substitute(expr, instance, job="hoststream"), at)
        if not finite_values(data):
            empty.append(title)
        elif "instance" in expr and data["resultType"] == "vector":
            seen = {s["metric"].get("instance") for s in data["result"]} - {None}
            assert seen <= set(instances), f"{title}: series of other hosts {seen}"
    assert not empty, f"panels without data: {empty}"


def test_host_variables_are_filled_from_node_uname_info(services: Settings, real_host) -> None:
    instance, _ = real_host
    variables = {v["name"]: v for v in load("host-detail")["templating"]["list"]}
    nodename = os.uname().nodename

    assert "hoststream" in label_values(services, variables["job"])
    assert nodename in label_values(services, variables["nodename"], job="hoststream")
    assert instance in label_values(
        services, variables["instance"], job="hoststream", nodename=nodename
    )


def test_every_host_query_returns_data_for_a_real_host(services: Settings, real_host) -> None:
    instance, at = real_host
    filled = {"job": "hoststream", "nodename": os.uname().nodename}
    exprs = targets(load("host-detail"), "expr")
    assert len(exprs) >= 30
    empty = []
    for title, expr in exprs:
        data = query(services, substitute(expr, instance, **filled), at)
        if not finite_values(data):
            empty.append((title, expr))
        elif data["resultType"] == "vector":
            seen = {s["metric"].get("instance") for s in data["result"]} - {None}
            assert seen <= {instance}, f"{title}: series of other hosts {seen}"
    assert not empty, f"panels without data: {empty}"


def test_fleet_overview_counts_both_hosts(services: Settings, hosts) -> None:
    instances, at = hosts
    [(_, expr)] = [t for t in targets(load("fleet-overview"), "expr") if t[0] == "Hosts reporting"]
    data = query(services, substitute(expr, "|".join(instances), job="hoststream"), at)
    assert finite_values(data) == [2.0]


@pytest.mark.parametrize("name", ["pipeline-health", "alerts"])
def test_every_other_promql_target_parses(services: Settings, hosts, name: str) -> None:
    _, at = hosts
    exprs = targets(load(name), "expr")
    assert exprs
    for _, expr in exprs:
        query(services, substitute(expr, ".*"), at)


def expand_sql_macros(raw: str) -> str:
    """Grafana's PostgreSQL macros, as it expands them for the last hour."""
    raw = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN now() - interval '1 hour' AND now()", raw)
    raw = re.sub(
        r"\$__timeGroupAlias\((\w+), *'1h'\)",
        r'floor(extract(epoch from \1)/3600)*3600 AS "time"',
        raw,
    )
    return substitute(raw, ".*")


def test_alert_sql_runs_against_the_sql_sinks_schema(services: Settings, unique: str) -> None:
    migrations = pytest.importorskip("hoststream.sinks.migrations")
    queries = targets(load("alerts"), "rawSql")
    assert len(queries) >= 4
    with psycopg.connect(services.sql_dsn.get_secret_value(), autocommit=True) as conn:
        schema = sql.Identifier(f"grafana_{unique}")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(schema))
            migrations.apply_migrations(conn)
            for title, raw in queries:
                expanded = expand_sql_macros(raw)
                assert not re.search(r"\$(__|\{|[a-z])", expanded), (
                    f"{title}: unexpanded {expanded}"
                )
                conn.execute(expanded).fetchall()
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))

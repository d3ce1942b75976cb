"""The Grafana provisioning and Loki shipping files: shapes Grafana and Promtail accept.

What can be checked without a Grafana (AGPL, not built here): the provisioning
keys, each dashboard's structure, that every panel's data source and variable
exists, that panels do not overlap, and that the log shippers parse the keys
hoststream's JSON lines really have. The PromQL itself runs against a real
VictoriaMetrics in tests/integration/observability/test_dashboard_queries.py.
"""

from __future__ import annotations

import json
import logging
import re
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml

from hoststream.telemetry import JsonFormatter

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "deploy" / "grafana" / "provisioning"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
LOKI = REPO / "deploy" / "loki"

#: Variables Grafana itself defines.
BUILTIN_VARIABLES = {
    "__rate_interval",
    "__interval",
    "__range",
    "__timeFilter",
    "__timeGroupAlias",
    "__all",
}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def datasources() -> dict[str, str]:
    config = yaml.safe_load((GRAFANA / "datasources" / "hoststream.yaml").read_text())
    return {ds["uid"]: ds["type"] for ds in config["datasources"]}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def test_the_four_dashboards_are_there() -> None:
    assert {p.stem for p in DASHBOARDS} == {
        "fleet-overview",
        "host-detail",
        "pipeline-health",
        "alerts",
    }


def test_datasources_file_is_provisioning_shaped() -> None:
    config = yaml.safe_load((GRAFANA / "datasources" / "hoststream.yaml").read_text())
    assert config["apiVersion"] == 1
    entries = config["datasources"]
    assert len({ds["uid"] for ds in entries}) == len(entries)
    assert len({ds["name"] for ds in entries}) == len(entries)
    assert [ds["name"] for ds in entries if ds.get("isDefault")] == ["VictoriaMetrics"]
    types = {ds["name"]: ds["type"] for ds in entries}
    assert types["VictoriaMetrics"] == "prometheus"
    assert types["Tempo"] == "tempo"
    assert types["Loki"] == "loki"
    assert types["PostgreSQL"] == "grafana-postgresql-datasource"
    # Links between them point at data sources that exist.
    uids = {ds["uid"] for ds in entries}
    for ds in entries:
        json_data = ds.get("jsonData", {})
        for key in ("tracesToLogsV2", "tracesToMetrics"):
            if key in json_data:
                assert json_data[key]["datasourceUid"] in uids
        for field in json_data.get("derivedFields", []):
            assert field["datasourceUid"] in uids


def test_dashboard_provider_reads_this_folder() -> None:
    config = yaml.safe_load((GRAFANA / "dashboards" / "hoststream.yaml").read_text())
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "${GF_PATHS_PROVISIONING}/dashboards"


def test_dashboard_uids_are_unique() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid) for uid in uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_structure(path: Path) -> None:
    dash = load(path)
    # A provisioned dashboard is the bare model: no database id, a uid, a schema version.
    assert dash["id"] is None
    assert dash["title"].startswith("hoststream / ")
    assert isinstance(dash["schemaVersion"], int)
    assert dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert "instance" in variables
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dash)]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_tile_the_grid_without_overlap(path: Path) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(load(path)):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        assert pos["w"] > 0
        assert pos["h"] > 0
        for cell in product(
            range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])
        ):
            assert cell not in cells, f"{panel['title']!r} overlaps {cells[cell]!r}"
            cells[cell] = panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_target_has_a_known_datasource_and_known_variables(path: Path) -> None:
    dash = load(path)
    known_uids = datasources()
    variables = {v["name"] for v in dash["templating"]["list"]} | BUILTIN_VARIABLES
    for panel in panels(dash):
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs)
        for target in [panel, *panel["targets"]]:
            ds = target["datasource"]
            if ds["uid"] == "${datasource}":
                assert ds["type"] == "prometheus"
            else:
                assert known_uids[ds["uid"]] == ds["type"], panel["title"]
        for target in panel["targets"]:
            query = target.get("expr") or target.get("rawSql")
            assert query, f"{panel['title']}: target without a query"
            used = {a or b for a, b in VARIABLE.findall(query)}
            assert used <= variables, f"{panel['title']}: unknown variable(s) {used - variables}"


def test_fleet_and_host_dashboards_use_node_exporter_names_and_the_job() -> None:
    # Both pick their job like node_exporter dashboards do.
    for stem, job in (("fleet-overview", 'job="$job"'), ("host-detail", 'job="$job"')):
        exprs = [
            t["expr"]
            for p in panels(load(GRAFANA / "dashboards" / f"{stem}.json"))
            for t in p.get("targets", [])
        ]
        assert exprs
        for expr in exprs:
            assert job in expr, expr
            assert re.search(r"\bnode_\w+", expr), expr


def test_fleet_dashboard_picks_job_and_hosts_from_node_uname_info() -> None:
    dashboard = load(GRAFANA / "dashboards" / "fleet-overview.json")
    queries = {
        v["name"]: v["query"]["query"]
        for v in dashboard["templating"]["list"]
        if isinstance(v["query"], dict)
    }
    assert queries == {
        "job": "label_values(node_uname_info, job)",
        "instance": 'label_values(node_uname_info{job="$job"}, instance)',
    }


def test_host_dashboard_variables_are_node_exporter_dashboards_ones() -> None:
    dashboard = load(GRAFANA / "dashboards" / "host-detail.json")
    queries = {
        v["name"]: v["query"]["query"]
        for v in dashboard["templating"]["list"]
        if isinstance(v["query"], dict)
    }
    assert queries["job"] == "label_values(node_uname_info, job)"
    assert queries["nodename"] == 'label_values(node_uname_info{job="$job"}, nodename)'
    assert queries["instance"] == (
        'label_values(node_uname_info{job="$job", nodename="$nodename"}, instance)'
    )
    exprs = " ".join(t["expr"] for p in panels(dashboard) for t in p.get("targets", []))
    # What an operator expects of a host dashboard.
    for series in (
        "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_Slab_bytes",
        "node_disk_read_bytes_total", "node_disk_io_time_seconds_total", "node_disk_io_now",
        "node_filesystem_avail_bytes", "node_network_receive_bytes_total",
        "node_network_receive_errs_total", "node_pressure_cpu_waiting_seconds_total",
        "node_boot_time_seconds",
    ):  # fmt: skip
        assert series in exprs, series


# --- Loki shipping ------------------------------------------------------------


def json_line_keys() -> set[str]:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    return set(json.loads(JsonFormatter("producer").format(record)))


def expand_braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    return [
        expanded
        for option in match.group(1).split(",")
        for expanded in expand_braces(pattern[: match.start()] + option + pattern[match.end() :])
    ]


def matches(glob: str, name: str) -> bool:
    return any(
        re.fullmatch(re.escape(p).replace(r"\*", "[^/]*"), name) for p in expand_braces(glob)
    )


def test_promtail_parses_the_keys_of_hoststream_json_lines() -> None:
    config = yaml.safe_load((LOKI / "promtail.yaml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    stages = jobs["hoststream"]["pipeline_stages"]
    [json_stage] = [s["json"] for s in stages if "json" in s]
    assert set(json_stage["expressions"].values()) <= json_line_keys()
    assert {"trace_id", "span_id", "level", "component", "ts"} <= set(json_stage["expressions"])
    [metadata] = [s["structured_metadata"] for s in stages if "structured_metadata" in s]
    assert {"trace_id", "span_id"} <= set(metadata)
    [labels] = [s["labels"] for s in stages if "labels" in s]
    assert "trace_id" not in labels  # one value per trace: never an index label


def test_promtail_and_alloy_read_the_same_files() -> None:
    promtail = yaml.safe_load((LOKI / "promtail.yaml").read_text())
    globs = {
        job["job_name"]: job["static_configs"][0]["labels"]["__path__"].removeprefix(
            "${HOSTSTREAM_LOGS}/"
        )
        for job in promtail["scrape_configs"]
    }
    components, stack = globs["hoststream"], globs["hoststream-stack"]
    for name in ("producer", "simulator", "stream", "sink-victoriametrics", "sink-sql", "api"):
        assert matches(components, f"{name}.log"), name
        assert not matches(stack, f"{name}.log"), name
    for name in ("kafka", "schema-registry", "postgres", "victoriametrics", "jaeger"):
        assert matches(stack, f"{name}.log"), name
        assert not matches(components, f"{name}.log"), name
    alloy = (LOKI / "config.alloy").read_text()
    assert f'+ "/{components}"' in alloy
    assert f'+ "/{stack}"' in alloy
    alloy_keys = set(re.findall(r'^\s+(\w+)\s+= "(\1)",?$', alloy, re.MULTILINE))
    assert {k for k, _ in alloy_keys} >= {"ts", "level", "component", "trace_id", "span_id"}

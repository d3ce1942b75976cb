"""A second API process whose VictoriaMetrics is a closed port: 503 where needed, 200 elsewhere."""

from __future__ import annotations

import pytest

from tests.support.api import running_api
from tests.support.processes import free_port


@pytest.fixture(scope="module")
def api_without_vm(services, tmp_path_factory):
    # Nothing listens on a port just freed: every connection is refused.
    overrides = {"HOSTSTREAM_VM_URL": f"http://127.0.0.1:{free_port()}"}
    with running_api(services, tmp_path_factory, overrides) as api:
        yield api


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/hosts", {}),
        ("/api/v1/metrics/cpu/latest", {"host": "h1"}),
        ("/api/v1/query", {"query": "up"}),
    ],
)
def test_victoriametrics_down_is_503_naming_it(api_without_vm, path, params) -> None:
    response = api_without_vm.get(path, params=params)
    assert response.status_code == 503, response.text
    assert "VictoriaMetrics is unavailable" in response.text
    assert "Traceback" not in response.text


def test_health_names_victoriametrics_and_the_rest_still_answers(api_without_vm) -> None:
    health = api_without_vm.get("/api/v1/health", token=None)
    assert health.status_code == 503
    checks = health.json()["checks"]
    assert checks["victoriametrics"].startswith("failed: ConnectError")
    assert checks["postgres"] == checks["kafka"] == "ok"
    # PostgreSQL is up: what it serves does not depend on VictoriaMetrics.
    assert api_without_vm.get("/api/v1/alerts").status_code == 200


def test_a_database_the_sql_sink_has_not_set_up_yet_is_empty_not_down(
    services, tmp_path_factory
) -> None:
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"empty_{uuid.uuid4().hex[:8]}"
    admin_dsn = services.sql_dsn.get_secret_value()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = make_conninfo(**{**conninfo_to_dict(admin_dsn), "dbname": name})
        with running_api(services, tmp_path_factory, {"HOSTSTREAM_SQL_DSN": dsn}) as api:
            aggregates = api.get(
                "/api/v1/aggregates", params={"host": "h1", "metric": "node_load1"}
            )
            assert aggregates.status_code == 200, aggregates.text
            assert aggregates.json() == {"items": [], "next_cursor": None}
            alerts = api.get("/api/v1/alerts")
            assert alerts.status_code == 200, alerts.text
            assert alerts.json()["items"] == []
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

"""A second API process whose VictoriaMetrics is a closed port: 503 where needed, 200 elsewhere."""

from __future__ import annotations

import pytest

from .conftest import free_port, running_api


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

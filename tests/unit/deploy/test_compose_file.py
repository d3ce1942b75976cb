"""docker-compose.kafka.yml, as Docker Compose v2 itself reads it.

Compose's ``config`` (built from the Go module proxy, tests/support/deploy_tools.py)
parses, validates against the Compose specification and interpolates the file
without a Docker engine; these tests then check that it runs the whole platform:
every service of the local stack and every hoststream component from the one image.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from tests.support.deploy_tools import deploy_tool

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.kafka.yml"
STACK_SERVICES = {
    "kafka",
    "schema-registry",
    "victoriametrics",
    "postgres",
    "alertmanager",
    "jaeger",
}
COMPONENTS = {
    "producer": ["produce"],
    "stream": ["stream"],
    "sink-victoriametrics": ["sink", "victoriametrics"],
    "sink-sql": ["sink", "sql"],
    "sink-alerts": ["sink", "alerts"],
    "api": ["api", "--host", "0.0.0.0", "--port", "8000"],
}


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(deploy_tool("docker-compose")), "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


@cache
def config() -> dict[str, Any]:
    done = compose_config(COMPOSE_FILE)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_compose_accepts_the_file_and_its_project_name() -> None:
    assert config()["name"] == "hoststream"


def test_it_runs_every_stack_service_and_every_component() -> None:
    assert set(config()["services"]) == STACK_SERVICES | set(COMPONENTS)


def test_every_component_runs_its_command_from_the_one_image() -> None:
    services = config()["services"]
    for name, command in COMPONENTS.items():
        service = services[name]
        assert service["command"] == command, name
        assert service["image"] == "hoststream:local", name
        assert Path(service["build"]["context"]) == REPO, name
        assert service["build"]["dockerfile"] == "Dockerfile"


def test_components_wait_for_the_services_they_need() -> None:
    services = config()["services"]
    for name in COMPONENTS:
        needs = services[name]["depends_on"]
        assert needs["kafka"]["condition"] == "service_healthy", name
        assert {"postgres", "schema-registry", "victoriametrics"} <= set(needs), name
    assert "alertmanager" in services["sink-alerts"]["depends_on"]


def test_every_published_port_is_on_loopback() -> None:
    for name, service in config()["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", name


def test_compose_refuses_what_the_specification_does_not_allow(tmp_path: Path) -> None:
    # The checks above could not fail if config accepted anything YAML.
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text()
    broken.write_text(text.replace('command: ["produce"]', 'comand: ["produce"]', 1))
    done = compose_config(broken)
    assert done.returncode != 0
    assert "additional properties 'comand' not allowed" in done.stderr

"""The stack's Jaeger: loopback only, ports shifted with the stack, its address exported."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack import Stack
from hoststream.stack.jaeger import Jaeger

pytestmark = pytest.mark.usefixtures("no_otlp_environment")


def endpoints(node: object) -> list[str]:
    """Every ``endpoint`` value anywhere in a collector configuration."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "endpoint":
                found.append(str(value))
            found.extend(endpoints(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(endpoints(item))
    return found


def jaeger_of(stack: Stack) -> Jaeger:
    [jaeger] = [s for s in stack.services() if isinstance(s, Jaeger)]
    return jaeger


def test_every_listener_is_on_loopback_at_the_stack_ports(tmp_path: Path) -> None:
    jaeger = jaeger_of(Stack(tmp_path, services=["jaeger"]))
    jaeger.prepare()
    config = yaml.safe_load(Path(jaeger.config_file).read_text())
    assert sorted(endpoints(config)) == [
        "127.0.0.1:16685",
        "127.0.0.1:16686",
        "127.0.0.1:4317",
        "127.0.0.1:4318",
    ]
    assert sorted(jaeger.ports) == [4317, 4318, 16685, 16686]
    # No Prometheus listener of its own (the collector's default is :8888 on every address).
    assert config["service"]["telemetry"]["metrics"] == {"level": "none"}
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]


def test_ports_follow_the_stack_offset_and_the_endpoint_is_exported(tmp_path: Path) -> None:
    stack = Stack(tmp_path, services=["jaeger"], port_offset=1000)
    jaeger = jaeger_of(stack)
    assert sorted(jaeger.ports) == [5317, 5318, 17685, 17686]
    assert jaeger.address == "http://127.0.0.1:17686"
    assert stack.environment() == {"HOSTSTREAM_OTLP_ENDPOINT": "http://127.0.0.1:5318"}


def test_jaeger_is_the_last_group_of_the_full_stack(tmp_path: Path) -> None:
    services = Stack(tmp_path).services()
    assert isinstance(services[-1], Jaeger)
    assert Stack(tmp_path).environment()["HOSTSTREAM_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"


def test_a_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    jaeger = jaeger_of(Stack(tmp_path, lib=tmp_path / "empty-lib", services=["jaeger"]))
    with pytest.raises(PrerequisiteMissingError, match=r"build-jaeger\.sh"):
        jaeger.command()

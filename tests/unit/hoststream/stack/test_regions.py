"""The two-region stack's layout and MirrorMaker 2's configuration (no processes run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hoststream.errors import StackError
from hoststream.stack import Stack
from hoststream.stack.manager import REGION_PORT_SHIFT, REGION_SERVICES, REGIONS
from hoststream.topics import MIRRORED_TOPIC_REGEXES
from tests.support.paths import REPO


def two_regions(tmp_path: Path, offset: int = 0) -> Stack:
    return Stack(tmp_path / "state", tmp_path / "lib", port_offset=offset, regions=2)


def test_the_second_region_has_its_own_stores_on_ports_moved_past_the_offset(
    tmp_path: Path,
) -> None:
    stack = two_regions(tmp_path, offset=700)
    other = stack.other_region()
    assert other.groups == list(REGION_SERVICES)
    assert other.root == stack.root / REGIONS[1]
    own_ports = {p for s in stack.services() for p in s.ports}
    other_ports = {p for s in other.services() for p in s.ports}
    assert other_ports == {
        p + REGION_PORT_SHIFT
        for s in stack.services()
        if s.name in ("postgres", "victoriametrics", "kafka", "schema-registry")
        for p in s.ports
    }
    assert not own_ports & other_ports
    assert stack.environment()["HOSTSTREAM_REGION"] == "region-a"
    env_b = other.environment()
    assert env_b["HOSTSTREAM_REGION"] == "region-b"
    assert env_b["HOSTSTREAM_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{9092 + 700 + REGION_PORT_SHIFT}"


def test_one_region_names_none(tmp_path: Path) -> None:
    assert "HOSTSTREAM_REGION" not in Stack(tmp_path, tmp_path / "lib").environment()


@pytest.mark.parametrize("options", [{"brokers": 3}, {"secure": True}, {"regions": 3}])
def test_two_regions_run_one_plaintext_broker_each(tmp_path: Path, options: dict) -> None:
    with pytest.raises(StackError, match="regions"):
        Stack(tmp_path, tmp_path / "lib", **{"regions": 2, **options})


def test_mirrormaker_copies_both_ways_what_each_region_writes_for_the_other(
    tmp_path: Path,
) -> None:
    mirrormaker = two_regions(tmp_path, offset=700).mirrormaker()
    assert mirrormaker.flows == [("region-a", "region-b"), ("region-b", "region-a")]
    lines = dict(
        line.split(" = ", 1) for line in mirrormaker.properties().splitlines() if " = " in line
    )
    assert lines["clusters"] == "region-a, region-b"
    assert lines["region-a.bootstrap.servers"] == "127.0.0.1:9792"
    assert lines["region-b.bootstrap.servers"] == "127.0.0.1:11792"
    for flow in ("region-a->region-b", "region-b->region-a"):
        assert lines[f"{flow}.enabled"] == "true"
        assert lines[f"{flow}.topics"] == ", ".join(MIRRORED_TOPIC_REGEXES)
    # The default replication policy: copies carry their source's name, never loop.
    assert not any("replication.policy" in key for key in lines)
    assert lines["replication.factor"] == "1"


@pytest.mark.parametrize(
    ("topic", "copied"),
    [
        ("metrics.agg.10s", True),
        ("p.metrics.agg.1m", True),
        ("alerts", True),
        ("p.alerts", True),
        ("_schemas", True),
        ("p._schemas", True),
        ("metrics.cpu", False),
        ("p.metrics.agg.1m.dlq", False),
        ("alerts.dlq", False),
        ("p-hoststream-streams-windows-changelog", False),
    ],
)
def test_what_mirrormaker_copies(topic: str, copied: bool) -> None:
    # Java's Pattern.matches is a whole-name match, as fullmatch is.
    assert any(re.fullmatch(regex, topic) for regex in MIRRORED_TOPIC_REGEXES) is copied


def test_mirrormaker_is_the_brokers_kafka_version() -> None:
    maven = REPO / "deploy" / "local" / "maven"
    version = re.compile(r"<artifactId>(kafka_2\.13|connect-mirror)</artifactId><version>([^<]+)<")
    (broker,) = {v for _, v in version.findall((maven / "kafka.xml").read_text())}
    found = dict(version.findall((maven / "mirrormaker.xml").read_text()))
    assert found == {"connect-mirror": broker}

"""The Strimzi resources (deploy/strimzi/): the brokers and MirrorMaker 2 of two regions.

No Kubernetes runs here, so these check what would break replication quietly:
the Kafka version matches the local stack's, each region's mirror copies the
other region's aggregates and alerts (and nothing else: not raw metrics, not
dead letters), and the cluster aliases are the regions the chart's values name,
so the mirrored topics' prefixes are the region names the sinks expect.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
STRIMZI = REPO / "deploy" / "strimzi"
REGIONS = ("region-a", "region-b")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def local_kafka_version() -> str:
    pom = (REPO / "deploy" / "local" / "maven" / "kafka.xml").read_text()
    match = re.search(r"<artifactId>kafka_2\.13</artifactId><version>([^<]+)</version>", pom)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("region", REGIONS)
def test_each_region_has_a_kraft_cluster_of_the_stacks_kafka_version(region: str) -> None:
    pool, kafka = documents(STRIMZI / f"kafka-{region}.yaml")
    assert pool["kind"] == "KafkaNodePool"
    assert kafka["kind"] == "Kafka"
    assert kafka["metadata"]["name"] == f"hoststream-{region}"
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["spec"]["kafka"]["version"] == local_kafka_version()
    config = kafka["spec"]["kafka"]["config"]
    # hoststream creates its topics itself; min ISR 2 of 3 keeps acks=all writable with a node down.
    assert config["auto.create.topics.enable"] is False
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == (3, 2)


@pytest.mark.parametrize(("region", "other"), [REGIONS, REGIONS[::-1]])
def test_each_regions_mirror_copies_the_other_regions_aggregates_and_alerts(
    region: str, other: str
) -> None:
    (mm2,) = documents(STRIMZI / f"mirrormaker2-{region}.yaml")
    assert mm2["kind"] == "KafkaMirrorMaker2"
    spec = mm2["spec"]
    assert spec["version"] == local_kafka_version()
    assert spec["connectCluster"] == region  # runs beside its target
    assert {c["alias"] for c in spec["clusters"]} == {region, other}
    (mirror,) = spec["mirrors"]
    assert (mirror["sourceCluster"], mirror["targetCluster"]) == (other, region)
    # Java's Pattern.matches is a whole-name match, as fullmatch is.
    pattern = re.compile(mirror["topicsPattern"])
    for topic in (
        "metrics.agg.10s",
        "metrics.agg.1m",
        "metrics.agg.5m",
        "metrics.agg.1h",
        "alerts",
        "_schemas",
    ):
        assert pattern.fullmatch(topic), topic
    for topic in ("metrics.cpu", "metrics.agg.1m.dlq", "alerts.dlq", f"{region}.alerts"):
        assert not pattern.fullmatch(topic), topic
    # The default replication policy (a "<source alias>." prefix) keeps the two
    # mirrors from copying records back where they came from.
    config = mirror["sourceConnector"]["config"]
    assert "replication.policy.class" not in config


def test_the_region_aliases_are_the_regions_the_chart_is_given() -> None:
    values = {
        yaml.safe_load(path.read_text())["region"]
        for path in (REPO / "deploy" / "helm" / "regions").glob("*.yaml")
    }
    assert values == set(REGIONS)

"""hoststream watching itself: a stopped sink's lag fires an alert in Alertmanager, then resolves.

A real vmalert (Debian's) evaluates the shipped rules file
(``deploy/vmalert/hoststream-self.yml``), with its ``for`` and range windows
shortened so the test takes seconds instead of minutes, against the real
VictoriaMetrics, and sends to the real Alertmanager. The lag comes from a real
consumer group on real Kafka, read by :class:`GroupLagCollector` as the API
serves it; the test does the scraping (it pushes the collector's exposition to
VictoriaMetrics), because the stack's scrape targets are fixed ports another
run may hold.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from hoststream.config import Settings
from hoststream.group_lag import GroupLagCollector
from hoststream.kafka import consumer_config, producer_config
from hoststream.stack.base import StackPaths
from hoststream.stack.vmalert import SELF_RULES, VmAlert

pytestmark = pytest.mark.integration

ALERT = "HoststreamConsumerLagGrowing"


def short_rules(path: Path) -> Path:
    """The shipped rules with every ``for`` at 4 s, ranges of 30 s, evaluated every 2 s."""
    rules = yaml.safe_load(SELF_RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "2s"
        for rule in group["rules"]:
            rule["for"] = "4s"
            rule["expr"] = re.sub(r"\[\d+m\]", "[30s]", rule["expr"])
    path.write_text(yaml.safe_dump(rules))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def vmalert(services: Settings, tmp_path: Path) -> Iterator[VmAlert]:
    assert services.alertmanager_url, "the stack's Alertmanager is needed"
    service = VmAlert(
        StackPaths(tmp_path, tmp_path / "lib"),
        free_port(),
        services.vm_url,
        services.alertmanager_url,
        rule_files=[short_rules(tmp_path / "rules.yml")],
        evaluation_interval="2s",
        name="vmalert-test",
    )
    service.start()
    yield service
    service.stop()


def firing(settings: Settings, consumer_group: str) -> list[dict[str, Any]]:
    """The Alertmanager alerts of this rule for this consumer group that are active now."""
    response = httpx.get(
        f"{settings.alertmanager_url}/api/v2/alerts",
        params={"filter": [f'alertname="{ALERT}"', f'consumer_group="{consumer_group}"']},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    now = time.time()
    return [
        alert
        for alert in response.json()
        if alert["status"]["state"] == "active"
        and _unix(alert["endsAt"]) > now  # a resolved alert ends in the past
    ]


def _unix(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def scrape_into_vm(settings: Settings, collector: GroupLagCollector, instance: str) -> None:
    """What VictoriaMetrics' scrape of the API does: the collector's numbers, now."""
    collector.refresh()
    registry = CollectorRegistry()
    registry.register(collector)
    body = generate_latest(registry).decode()
    response = httpx.post(
        f"{settings.vm_url}/api/v1/import/prometheus",
        params={
            "extra_label": ["job=hoststream-pipeline", "component=api", f"instance={instance}"]
        },
        content=body,
        timeout=10,
    )
    assert response.status_code == 204, response.text


def consume_all(settings: Settings, topic: str, group: str) -> None:
    """A sink of the group reads up to the topic's end, commits and stops."""
    consumer = Consumer(consumer_config(settings, group, **{"auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        deadline = time.monotonic() + 60
        last = None
        while last is None or last.offset() < end - 1:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                last = message
        # As the sinks do: the offset after the last record written.
        consumer.commit(message=last, asynchronous=False)
    finally:
        consumer.close()


def test_a_stopped_sinks_growing_lag_fires_and_resolves_in_alertmanager(
    services: Settings, make_topic: Any, unique: str, vmalert: VmAlert
) -> None:
    topic = make_topic("metrics.cpu")
    group = f"{unique}.hoststream-sink-victoriametrics"
    producer = Producer(producer_config(services))

    def produce(count: int) -> None:
        for n in range(count):
            producer.produce(topic, key=b"h1", value=b"x" * 64 + str(n).encode())
        assert producer.flush(30) == 0

    # The sink ran (its group committed), then stopped; the producers go on.
    produce(10)
    consume_all(services, topic, group)
    collector = GroupLagCollector(services, {"sink-victoriametrics": group})
    instance = f"{unique}-api"

    deadline = time.monotonic() + 120
    while not firing(services, group):
        assert time.monotonic() < deadline, "the lag alert never reached Alertmanager"
        produce(300)
        scrape_into_vm(services, collector, instance)
        time.sleep(2)
    alert = firing(services, group)[0]
    assert alert["labels"]["group"] == "sink-victoriametrics"
    assert alert["labels"]["severity"] == "warning"
    assert "sink-victoriametrics" in alert["annotations"]["summary"]

    # The sink is back and catches up: the lag is gone and the alert resolves.
    consume_all(services, topic, group)
    deadline = time.monotonic() + 120
    while firing(services, group):
        assert time.monotonic() < deadline, "the lag alert never resolved"
        scrape_into_vm(services, collector, instance)
        time.sleep(2)
    collector.refresh()
    registry = CollectorRegistry()
    registry.register(collector)
    assert (
        registry.get_sample_value(
            "hoststream_consumer_group_lag",
            {"group": "sink-victoriametrics", "consumer_group": group},
        )
        == 0
    )

"""``alerts`` events through Kafka and the alert sink to Alertmanager, PagerDuty and Opsgenie.

Alertmanager is the real one; PagerDuty and Opsgenie are the local fakes
(test doubles) of :mod:`tests.support.doubles`.
"""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from hoststream.config import Settings
from hoststream.dead_letters import HEADER_ERROR, HEADER_SINK
from hoststream.kafka import TopicSpec, admin_client, ensure_topics, producer_config
from hoststream.schemas import AlertEvent, codec_for
from hoststream.sinks.alerts import build_alert_sink
from hoststream.sinks.alerts.sink import DeliveryPolicy
from hoststream.sinks.consumer import BatchPolicy
from tests.support.alerts import GENIE_KEY, PD_KEY, firing, resolved
from tests.support.kafka import drain
from tests.support.sinks import ThreadedSink, committed, end_offsets, wait_for

ROUTES = "default:\n  receivers: [pagerduty, opsgenie, alertmanager]\n"


def recent(alert: AlertEvent, rule: str) -> AlertEvent:
    """``alert`` as if it started a minute ago, under ``rule``."""
    now = int(time.time() * 1000)
    return replace(
        alert, rule=rule, starts_at=now - 60_000, event_time=now - 59_000, window_end=now - 60_000
    )


def produce(settings: Settings, topic: str, alerts: list[AlertEvent]) -> None:
    serializer = codec_for(settings, AlertEvent).serializer
    producer = Producer(producer_config(settings))
    ctx = SerializationContext(topic, MessageField.VALUE)
    for alert in alerts:
        producer.produce(topic, key=alert.dedup_key.encode(), value=serializer(alert, ctx))
    assert producer.flush(30) == 0


def am_alerts(url: str, rule: str) -> list[dict]:
    response = httpx.get(
        f"{url}/api/v2/alerts", params={"filter": f'alertname="{rule}"'}, timeout=10
    )
    response.raise_for_status()
    return response.json()


def test_alerts_reach_every_receiver_and_offsets_wait_for_delivery(
    services: Settings, unique: str, alertmanager_url, pagerduty, opsgenie, tmp_path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    settings = services.model_copy(
        update={
            "topic_prefix": f"{unique}.",
            "alertmanager_url": alertmanager_url,
            "pagerduty_routing_key": SecretStr(PD_KEY),
            "pagerduty_url": pagerduty.enqueue_url,
            "opsgenie_api_key": SecretStr(GENIE_KEY),
            "opsgenie_url": opsgenie.url,
            "alert_routes_file": routes,
        }
    )
    topic = settings.topic("alerts")
    group = f"{unique}-alerts"
    ensure_topics(settings, [TopicSpec(topic, 2, settings.topic_replication_factor)])
    rule = f"HoststreamE2E{unique}"
    a = recent(firing(f"{unique}/a"), rule)
    b = recent(firing(f"{unique}/b", host="web-2"), rule)
    poison = recent(firing(f"{unique}/" + "x" * 300, host="web-3"), rule)  # PagerDuty: 400
    a_resolved = resolved(a, ends_at=int(time.time() * 1000))
    registry = CollectorRegistry()
    loop = build_alert_sink(
        settings,
        registry=registry,
        group_id=group,
        policy=BatchPolicy(max_records=10, max_delay_s=0.2),
        delivery=DeliveryPolicy(attempts=2, initial_s=0.05, max_s=0.1),
    )
    sink = ThreadedSink(loop, registry)
    # PagerDuty is down at first: nothing may be committed until it is back.
    pagerduty.fail_next(100_000, 500)
    sink.thread.start()
    try:
        produce(settings, topic, [a, b, poison, a_resolved])
        # Partitions the keys did not hash to have nothing to commit.
        ends = {p: end for p, end in end_offsets(settings, topic).items() if end > 0}
        assert sum(ends.values()) == 4
        wait_for(
            lambda: (
                {a.dedup_key, b.dedup_key, poison.dedup_key} <= set(opsgenie.alerts)
                and opsgenie.alerts[a.dedup_key].status == "closed"
            ),
            30,
            "Opsgenie to get every alert",
        )
        wait_for(lambda: len(am_alerts(alertmanager_url, rule)) == 2, 30, "Alertmanager")
        time.sleep(1.0)  # a few more failed PagerDuty attempts
        assert sink.metric("hoststream_sink_paused", sink="alerts") == 1
        assert all(o < 0 for o in committed(settings, group, topic, ends).values())

        pagerduty.clear_faults()
        wait_for(
            lambda: committed(settings, group, topic, ends) == ends,
            60,
            f"group {group} to commit {ends}",
        )
        assert pagerduty.incidents[a.dedup_key].status == "resolved"
        assert pagerduty.incidents[b.dedup_key].status == "triggered"
        assert poison.dedup_key not in pagerduty.incidents
        # Alertmanager: b still fires, a resolved (so no longer listed), the poison fires.
        shown = {x["labels"]["instance"]: x for x in am_alerts(alertmanager_url, rule)}
        assert set(shown) == {"web-2", "web-3"}
        [dead] = drain(settings, [f"{topic}.dlq"], expected=1, timeout_s=30)
        headers = dict(dead.headers())
        assert dead.key() == poison.dedup_key.encode()
        assert headers[HEADER_SINK] == b"alerts"
        assert headers[HEADER_ERROR].startswith(b"pagerduty: HTTP 400")
        assert PD_KEY.encode() not in headers[HEADER_ERROR]
        dead_lettered = sink.metric(
            "hoststream_sink_records_dead_lettered_total",
            sink="alerts",
            error="AlertDeliveryRefused",
        )
        assert dead_lettered == 1
        assert (
            sink.metric("hoststream_alert_deliveries_total", receiver="pagerduty", outcome="sent")
            == 3
        )
    finally:
        sink.close()
        for alert in (b, poison):
            resolve = resolved(alert, ends_at=int(time.time() * 1000))
            body = [
                {
                    "labels": {
                        "alertname": rule,
                        "instance": alert.host,
                        "job": "hoststream",
                        "severity": alert.severity,
                        "team": "web",
                    },
                    "startsAt": "2020-01-01T00:00:00Z",
                    "endsAt": time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(resolve.ends_at / 1000)
                    ),
                }
            ]
            httpx.post(f"{alertmanager_url}/api/v2/alerts", json=body, timeout=10)
        admin_client(settings).delete_topics([topic, f"{topic}.dlq"], operation_timeout=10)

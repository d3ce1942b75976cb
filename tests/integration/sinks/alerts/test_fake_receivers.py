"""PagerDuty and Opsgenie routers against the local fakes (test doubles) on loopback ports."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr

from hoststream.errors import PermanentDeliveryError
from hoststream.sinks.alerts.opsgenie import OpsgenieRouter
from hoststream.sinks.alerts.pagerduty import PagerDutyRouter
from hoststream.sinks.alerts.rate_limit import RateLimit
from hoststream.sinks.alerts.routing import parse_routes
from hoststream.sinks.alerts.sink import AlertSink, DeliveryPolicy
from hoststream.sinks.base import SinkRecord
from tests.support.alerts import GENIE_KEY, PD_KEY, firing, resolved
from tests.support.doubles import FakeOpsgenie, FakePagerDuty

FAST = DeliveryPolicy(attempts=3, initial_s=0.05, max_s=0.2)


def sink_for(pagerduty: FakePagerDuty, opsgenie: FakeOpsgenie, policy=FAST) -> AlertSink:
    return AlertSink(
        parse_routes(
            "default: {receivers: [pagerduty, opsgenie]}\n",
            "r.yaml",
            available=["pagerduty", "opsgenie"],
        ),
        {
            "pagerduty": PagerDutyRouter(SecretStr(PD_KEY), pagerduty.enqueue_url),
            "opsgenie": OpsgenieRouter(SecretStr(GENIE_KEY), opsgenie.url),
        },
        policy=policy,
    )


def batch(*alerts):
    return [SinkRecord("alerts", 0, i, b"k", b"", a) for i, a in enumerate(alerts)]


def test_trigger_then_resolve_by_dedup_key(pagerduty, opsgenie):
    alert = firing("HighLoad/web-1/node_load1")
    sink = sink_for(pagerduty, opsgenie)
    try:
        assert sink.write(batch(alert)) == []
        assert pagerduty.incidents["HighLoad/web-1/node_load1"].status == "triggered"
        assert opsgenie.alerts["HighLoad/web-1/node_load1"].status == "open"
        assert opsgenie.alerts["HighLoad/web-1/node_load1"].priority == "P1"
        # A repeat is folded into the same incident / alert.
        assert sink.write(batch(alert)) == []
        assert pagerduty.incidents["HighLoad/web-1/node_load1"].triggers == 2
        assert opsgenie.alerts["HighLoad/web-1/node_load1"].count == 2
        assert sink.write(batch(resolved(alert))) == []
    finally:
        sink.close()
    assert pagerduty.incidents["HighLoad/web-1/node_load1"].status == "resolved"
    assert opsgenie.alerts["HighLoad/web-1/node_load1"].status == "closed"
    [close] = [r for r in opsgenie.requests if r.path.endswith("/close")]
    assert close.path == "/v2/alerts/HighLoad%2Fweb-1%2Fnode_load1/close"
    assert close.query == {"identifierType": ["alias"]}
    assert close.headers["authorization"] == f"GenieKey {GENIE_KEY}"
    assert all(r.status == 202 for r in pagerduty.requests + opsgenie.requests)


def test_429_then_202_is_retried(pagerduty, opsgenie):
    pagerduty.fail_next(2, 429, retry_after=0.1)
    opsgenie.fail_next(1, 500)
    sink = sink_for(pagerduty, opsgenie)
    try:
        assert sink.write(batch(firing("k1"))) == []
    finally:
        sink.close()
    assert [r.status for r in pagerduty.requests] == [429, 429, 202]
    assert [r.status for r in opsgenie.requests] == [500, 202]
    assert pagerduty.incidents["k1"].status == "triggered"
    assert opsgenie.alerts["k1"].status == "open"


def test_400_is_rejected_for_the_dead_letter_topic(pagerduty, opsgenie):
    # PagerDuty limits dedup keys to 255 characters; Opsgenie's alias to 512.
    too_long = firing("x" * 300)
    sink = sink_for(pagerduty, opsgenie)
    try:
        [rejection] = sink.write(batch(too_long, firing("fine")))
    finally:
        sink.close()
    assert rejection.record.decoded is too_long
    assert rejection.reason.startswith("pagerduty: HTTP 400")
    assert "dedup_key" in rejection.reason
    assert [r.status for r in pagerduty.requests].count(400) == 1  # not retried
    assert "x" * 300 in opsgenie.alerts  # the other receiver still got it
    assert pagerduty.incidents["fine"].status == "triggered"


def test_the_fakes_refuse_malformed_bodies(pagerduty, opsgenie):
    with httpx.Client(timeout=5) as client:
        not_json = client.post(pagerduty.enqueue_url, content=b"{nope")
        assert not_json.status_code == 400
        no_payload = client.post(
            pagerduty.enqueue_url,
            json={"routing_key": PD_KEY, "event_action": "trigger", "dedup_key": "k"},
        )
        assert no_payload.status_code == 400
        assert no_payload.json()["errors"] == ["'payload' is required for trigger events"]
        bad = client.post(
            pagerduty.enqueue_url,
            json={
                "routing_key": "short",
                "event_action": "resolve",
                "payload": {"summary": "s", "source": "h", "severity": "fatal"},
            },
        )
        assert bad.status_code == 400
        assert bad.json()["errors"] == [
            "Length of 'routing_key' is incorrect (should be 32 characters)",
            "'dedup_key' is required for resolve events",
        ]
        auth = {"Authorization": f"GenieKey {GENIE_KEY}"}
        assert (
            client.post(f"{opsgenie.url}/v2/alerts", content=b"[", headers=auth).status_code == 400
        )
        empty = client.post(
            f"{opsgenie.url}/v2/alerts", json={"message": "", "priority": "P9"}, headers=auth
        )
        assert empty.status_code == 422
        assert set(empty.json()["errors"]) == {"message", "priority"}
        wrong_key = client.post(
            f"{opsgenie.url}/v2/alerts",
            json={"message": "m"},
            headers={"Authorization": "GenieKey nope"},
        )
        assert wrong_key.status_code == 401
    assert pagerduty.incidents == {}
    assert opsgenie.alerts == {}


def test_a_wrong_genie_key_is_a_permanent_error(opsgenie):
    router = OpsgenieRouter(SecretStr("wrong-key"), opsgenie.url)
    with pytest.raises(PermanentDeliveryError, match="HTTP 401"):
        asyncio.run(router.send(firing()))


def test_the_base_url_may_end_with_a_slash(opsgenie):
    # EU accounts use https://api.eu.opsgenie.com; only the base URL differs.
    router = OpsgenieRouter(SecretStr(GENIE_KEY), opsgenie.url + "/")

    async def send() -> None:
        await router.send(firing("eu"))
        await router.aclose()

    asyncio.run(send())
    assert opsgenie.requests[0].path == "/v2/alerts"


def test_a_429_holds_the_routing_key_and_every_alert_is_delivered_once(pagerduty, opsgenie):
    # PagerDuty answers 429 without Retry-After: the key is held with a backoff.
    pagerduty.fail_next(2, 429)
    sink = AlertSink(
        parse_routes("default: {receivers: [pagerduty]}\n", "r.yaml", available=["pagerduty"]),
        {
            "pagerduty": PagerDutyRouter(
                SecretStr(PD_KEY),
                pagerduty.enqueue_url,
                rate_limit=RateLimit(100, 60.0, hold_initial_s=0.2, hold_max_s=0.5),
            )
        },
        policy=FAST,
    )
    keys = [f"k{i}" for i in range(5)]
    try:
        assert sink.write(batch(*(firing(k) for k in keys))) == []
    finally:
        sink.close()
    assert [r.status for r in pagerduty.requests].count(429) == 2
    assert sorted(r.json()["dedup_key"] for r in pagerduty.requests if r.status == 202) == keys
    assert all(pagerduty.incidents[k].triggers == 1 for k in keys)


def test_the_router_keeps_to_the_routing_keys_limit_so_pagerduty_refuses_nothing(pagerduty):
    # The fake enforces 4 events per 1.5 s per key, as PagerDuty does 120 per 60 s.
    pagerduty.events_per_window, pagerduty.window_s = 4, 1.5
    sink = AlertSink(
        parse_routes("default: {receivers: [pagerduty]}\n", "r.yaml", available=["pagerduty"]),
        {
            "pagerduty": PagerDutyRouter(
                SecretStr(PD_KEY), pagerduty.enqueue_url, rate_limit=RateLimit(4, 1.6)
            )
        },
        policy=FAST,
    )
    keys = [f"k{i}" for i in range(10)]
    try:
        assert sink.write(batch(*(firing(k) for k in keys))) == []
    finally:
        sink.close()
    assert pagerduty.throttled == 0
    assert [r.status for r in pagerduty.requests] == [202] * 10
    assert sorted(pagerduty.incidents) == keys


def test_without_the_limit_the_fake_pagerduty_refuses_the_excess(pagerduty):
    # The check above could fail: the fake does enforce its limit.
    pagerduty.events_per_window, pagerduty.window_s = 4, 60.0
    with httpx.Client(timeout=5) as client:
        statuses = [
            client.post(
                pagerduty.enqueue_url,
                json={"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": f"k{i}"},
            ).status_code
            for i in range(6)
        ]
    assert statuses == [202] * 4 + [429] * 2
    assert pagerduty.throttled == 2

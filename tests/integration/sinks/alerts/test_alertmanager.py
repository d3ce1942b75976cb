"""Alerts through the real Alertmanager's API v2, read back with GET /api/v2/alerts."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from hoststream.errors import PermanentDeliveryError
from hoststream.sinks.alerts.alertmanager import AlertmanagerRouter
from tests.support.alerts import firing, resolved


def listed(url: str, alertname: str) -> list[dict]:
    response = httpx.get(
        f"{url}/api/v2/alerts", params={"filter": f'alertname="{alertname}"'}, timeout=10
    )
    response.raise_for_status()
    return response.json()


def wait_listed(url: str, alertname: str, count: int, timeout_s: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = listed(url, alertname)
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def now_alert(rule: str, **kwargs):
    """A FIRING alert that started a minute ago (Alertmanager drops ones that ended long ago)."""
    now = int(time.time() * 1000)
    alert = firing(f"{rule}/web-1/node_load1", **kwargs)
    for name, value in (
        ("rule", rule),
        ("starts_at", now - 60_000),
        ("event_time", now - 59_000),
        ("window_end", now - 60_000),
    ):
        object.__setattr__(alert, name, value)
    return alert


def test_fire_then_resolve(alertmanager_url: str) -> None:
    rule = f"HoststreamTest{uuid.uuid4().hex[:8]}"
    alert = now_alert(rule, labels={"team": "web", "kube.ns": "prod"})
    router = AlertmanagerRouter(alertmanager_url, generator_base_url="http://127.0.0.1:8428")

    async def fire_then_resolve() -> tuple[list[dict], list[dict]]:
        await router.send(alert)
        fired = await asyncio.to_thread(wait_listed, alertmanager_url, rule, 1)
        await router.send(resolved(alert, ends_at=int(time.time() * 1000)))
        gone = await asyncio.to_thread(wait_listed, alertmanager_url, rule, 0)
        await router.aclose()
        return fired, gone

    fired, gone = asyncio.run(fire_then_resolve())
    [shown] = fired
    assert shown["status"]["state"] == "active"
    assert shown["labels"] == {
        "alertname": rule,
        "instance": "web-1",
        "job": "hoststream",
        "kube_ns": "prod",
        "severity": "critical",
        "team": "web",
    }
    assert shown["annotations"]["summary"] == "Load 12.5 on web-1"
    assert shown["annotations"]["runbook_url"] == "https://runbooks.example.com/high-load"
    assert shown["startsAt"].startswith(time.strftime("%Y-%m-%dT", time.gmtime()))
    assert shown["generatorURL"].startswith("http://127.0.0.1:8428/vmui/")
    # Firing until the RESOLVED event: endsAt is a day ahead, not resolve_timeout.
    assert shown["endsAt"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600))
    # Alertmanager's API v2 lists only unresolved alerts: endsAt in the past
    # removes the alert from the list (checked with Alertmanager 0.25).
    assert gone == []


def test_resending_a_firing_alert_keeps_one_alert(alertmanager_url: str) -> None:
    rule = f"HoststreamTest{uuid.uuid4().hex[:8]}"
    alert = now_alert(rule)
    router = AlertmanagerRouter(alertmanager_url)

    async def twice() -> None:
        await router.send(alert)
        await router.send(alert)
        await router.aclose()

    asyncio.run(twice())
    assert len(wait_listed(alertmanager_url, rule, 1)) == 1
    # Clean up: resolve it.
    resolve = AlertmanagerRouter(alertmanager_url)
    asyncio.run(resolve.send(resolved(alert, ends_at=int(time.time() * 1000))))
    assert wait_listed(alertmanager_url, rule, 0) == []


def test_alertmanager_refusing_an_alert_is_a_permanent_error(alertmanager_url: str) -> None:
    alert = now_alert(f"HoststreamTest{uuid.uuid4().hex[:8]}")
    # Ending before it started: Alertmanager answers 400 "start time must be before end time".
    ended_too_early = resolved(alert, ends_at=alert.starts_at - 60_000)
    router = AlertmanagerRouter(alertmanager_url)
    with pytest.raises(PermanentDeliveryError, match="HTTP 400"):
        asyncio.run(router.send(ended_too_early))

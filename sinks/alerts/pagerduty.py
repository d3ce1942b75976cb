"""PagerDuty Events API v2: ``POST https://events.pagerduty.com/v2/enqueue``.

A FIRING event is a ``trigger`` and a RESOLVED one a ``resolve``, both with the
alert's dedup key, so PagerDuty folds repeats into one incident and the resolve
closes it. PagerDuty answers 202 when it accepted the event, 400 when the event
is invalid (dead-lettered) and 429 when the integration is throttled (retried).

PagerDuty takes about 120 events per minute per routing key (over the 60 s
before each request) and drops what comes faster with a 429; the router
keeps to that limit itself (:class:`~sinks.alerts.rate_limit.RateLimit`),
waiting for a free slot up to ``max_wait_s`` and otherwise handing the wait
back to the sink, and holds the key after a 429 with a doubling backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import SecretStr

from hoststream.errors import RateLimitedDeliveryError
from hoststream.schemas import AlertEvent, AlertState
from hoststream.sinks.alerts.rate_limit import RateLimit
from hoststream.sinks.alerts.router import HttpRouter, iso8601, post_json, summary_of

__all__ = [
    "DEFAULT_URL",
    "EVENTS_PER_MINUTE",
    "PAGERDUTY_SEVERITIES",
    "PagerDutyRouter",
    "pagerduty_event",
]

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
#: PagerDuty's documented Events API v2 limit per routing key, over a sliding minute.
EVENTS_PER_MINUTE = 120
#: The severities PagerDuty accepts; the rules use the same words.
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
# PagerDuty truncates longer summaries; cutting here keeps the end readable.
_MAX_SUMMARY = 1024
# Labels that commonly name the logical group of hosts, in order of preference.
_GROUP_LABELS = ("service", "team", "job")


def pagerduty_event(alert: AlertEvent, routing_key: SecretStr) -> dict[str, Any]:
    """The Events API v2 body for ``alert`` (its exact JSON is tested)."""
    body: dict[str, Any] = {
        "routing_key": routing_key.get_secret_value(),
        "dedup_key": alert.dedup_key,
    }
    if alert.state is AlertState.RESOLVED:
        # A resolve needs nothing more; PagerDuty ignores a payload on it.
        body["event_action"] = "resolve"
        return body
    body["event_action"] = "trigger"
    severity = alert.severity if alert.severity in PAGERDUTY_SEVERITIES else "error"
    payload: dict[str, Any] = {
        "summary": summary_of(alert)[:_MAX_SUMMARY],
        "source": alert.host,
        "severity": severity,
        "timestamp": iso8601(alert.starts_at),
        "component": alert.metric,
        "class": alert.rule,
        "custom_details": {
            "rule": alert.rule,
            "severity": alert.severity,
            "metric": alert.metric,
            "value": alert.value,
            "threshold": alert.threshold,
            "labels": dict(alert.labels),
            "series_labels": dict(alert.series_labels),
            "annotations": dict(alert.annotations),
        },
    }
    group = next((alert.labels[k] for k in _GROUP_LABELS if alert.labels.get(k)), None)
    if group is not None:
        payload["group"] = group
    body["payload"] = payload
    body["client"] = "hoststream"
    runbook = alert.annotations.get("runbook_url")
    if runbook:
        body["links"] = [{"href": runbook, "text": "Runbook"}]
    return body


class PagerDutyRouter(HttpRouter):
    """Sends alerts to one PagerDuty service integration.

    Args:
        routing_key: the integration's 32-character routing key
            (``HOSTSTREAM_PAGERDUTY_ROUTING_KEY``); never logged or shown.
        url: the enqueue endpoint (``HOSTSTREAM_PAGERDUTY_URL``); tests point
            it at a local fake.
        client: the HTTP client to use (default: a new one, closed by :meth:`aclose`).
        timeout_s: per-request timeout.
        name: the receiver's name in the routing file.
        rate_limit: the routing key's limit (default: :data:`EVENTS_PER_MINUTE`
            per 60 s); routers sending with the same key must share one.
        max_wait_s: the longest :meth:`send` waits for the limit itself; a
            longer wait raises :class:`~hoststream.errors.RateLimitedDeliveryError`
            with that wait as ``retry_after``, so the sink backs off instead.
        sleep: waits for the limit; tests pass a fake one.
    """

    def __init__(
        self,
        routing_key: SecretStr,
        url: str = DEFAULT_URL,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        name: str = "pagerduty",
        rate_limit: RateLimit | None = None,
        max_wait_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(name, client, timeout_s)
        self.rate_limit = rate_limit or RateLimit(EVENTS_PER_MINUTE, 60.0)
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self._routing_key = routing_key
        self._url = url

    def __repr__(self) -> str:
        return (
            f"PagerDutyRouter(name={self.name!r}, url={self._url!r}, "
            "routing_key=SecretStr('**********'))"
        )

    async def send(self, alert: AlertEvent) -> None:
        limit = self.rate_limit
        while (wait := limit.delay()) > 0:
            if wait > self._max_wait_s:
                raise RateLimitedDeliveryError(
                    self.name,
                    f"the routing key's limit of {limit.limit} events per {limit.window_s:g} s"
                    f" is reached; next slot in {wait:.1f} s",
                    wait,
                )
            await self._sleep(wait)
        limit.take()
        try:
            await post_json(
                self._client,
                self.name,
                self._url,
                pagerduty_event(alert, self._routing_key),
                secrets=[self._routing_key],
                accepted=(202,),
            )
        except RateLimitedDeliveryError as exc:
            # Every alert of this key waits, not only this one.
            exc.retry_after = limit.throttled(exc.retry_after)
            raise
        limit.accepted()

"""PagerDuty Events API v2: ``POST https://events.pagerduty.com/v2/enqueue``.

A FIRING event is a ``trigger`` and a RESOLVED one a ``resolve``, both with the
alert's dedup key, so PagerDuty folds repeats into one incident and the resolve
closes it. PagerDuty answers 202 when it accepted the event, 400 when the event
is invalid (dead-lettered) and 429 when the integration is throttled (retried).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from hoststream.schemas import AlertEvent, AlertState
from hoststream.sinks.alerts.router import iso8601, post_json, summary_of

__all__ = ["DEFAULT_URL", "PAGERDUTY_SEVERITIES", "PagerDutyRouter", "pagerduty_event"]

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
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


class PagerDutyRouter:
    """Sends alerts to one PagerDuty service integration.

    Args:
        routing_key: the integration's 32-character routing key
            (``HOSTSTREAM_PAGERDUTY_ROUTING_KEY``); never logged or shown.
        url: the enqueue endpoint (``HOSTSTREAM_PAGERDUTY_URL``); tests point
            it at a local fake.
        client: the HTTP client to use (default: a new one, closed by :meth:`aclose`).
        timeout_s: per-request timeout.
        name: the receiver's name in the routing file.
    """

    def __init__(
        self,
        routing_key: SecretStr,
        url: str = DEFAULT_URL,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        name: str = "pagerduty",
    ) -> None:
        self.name = name
        self._routing_key = routing_key
        self._url = url
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout_s)

    def __repr__(self) -> str:
        return (
            f"PagerDutyRouter(name={self.name!r}, url={self._url!r}, "
            "routing_key=SecretStr('**********'))"
        )

    async def send(self, alert: AlertEvent) -> None:
        await post_json(
            self._client,
            self.name,
            self._url,
            pagerduty_event(alert, self._routing_key),
            secrets=[self._routing_key],
            accepted=(202,),
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

"""Opsgenie Alert API v2: create with ``alias`` = dedup key, close by alias.

- FIRING: ``POST {base}/v2/alerts``; Opsgenie deduplicates open alerts with
  the same alias, so a repeated create only bumps the alert's count.
- RESOLVED: ``POST {base}/v2/alerts/{alias}/close?identifierType=alias``.

Both answer 202 with a ``requestId``: Opsgenie processes requests
asynchronously, so 202 means "accepted", which is all a sink can know.
Authorization is ``GenieKey <key>``. The base URL is ``https://api.opsgenie.com``
or, for accounts in the EU, ``https://api.eu.opsgenie.com``
(``HOSTSTREAM_OPSGENIE_URL``). Opsgenie's API is to be retired in April 2027;
its successor will be one more module beside this one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from hoststream.schemas import AlertEvent, AlertState
from hoststream.sinks.alerts.router import HttpRouter, iso8601, post_json, summary_of

__all__ = [
    "DEFAULT_URL",
    "EU_URL",
    "OpsgenieRouter",
    "opsgenie_close",
    "opsgenie_create",
    "opsgenie_priority",
]

DEFAULT_URL = "https://api.opsgenie.com"
EU_URL = "https://api.eu.opsgenie.com"

_PRIORITIES = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}
# Opsgenie's documented limits; longer values are truncated by Opsgenie or refused.
_MAX_MESSAGE = 130
_MAX_ALIAS = 512
_MAX_DESCRIPTION = 15000
_MAX_TAGS = 20
_MAX_TAG = 50
_MAX_NOTE = 25000
_SOURCE = "hoststream"


def opsgenie_priority(severity: str) -> str:
    """critical P1, error P2, warning P3, info P5; anything else P3."""
    return _PRIORITIES.get(severity, "P3")


def _tags(alert: AlertEvent) -> list[str]:
    tags = [f"severity:{alert.severity}", f"rule:{alert.rule}", f"host:{alert.host}"]
    tags += [f"{k}:{v}" for k, v in sorted(alert.labels.items()) if k != "severity"]
    return [t[:_MAX_TAG] for t in tags[:_MAX_TAGS]]


def opsgenie_create(alert: AlertEvent) -> dict[str, Any]:
    """The create-alert body for a FIRING ``alert`` (its exact JSON is tested)."""
    summary = summary_of(alert)
    description = alert.annotations.get("description", "").strip() or summary
    details = {
        "rule": alert.rule,
        "metric": alert.metric,
        "value": f"{alert.value:g}",
        "threshold": f"{alert.threshold:g}",
        "starts_at": iso8601(alert.starts_at),
        **{f"label.{k}": v for k, v in sorted(alert.series_labels.items())},
    }
    runbook = alert.annotations.get("runbook_url")
    if runbook:
        details["runbook_url"] = runbook
        description = f"{description}\n\nRunbook: {runbook}"
    return {
        "message": summary[:_MAX_MESSAGE],
        "alias": alert.dedup_key[:_MAX_ALIAS],
        "description": description[:_MAX_DESCRIPTION],
        "tags": _tags(alert),
        "details": details,
        "entity": alert.host,
        "source": _SOURCE,
        "priority": opsgenie_priority(alert.severity),
    }


def opsgenie_close(alert: AlertEvent) -> dict[str, Any]:
    """The close-alert body for a RESOLVED ``alert``."""
    ended = iso8601(alert.ends_at if alert.ends_at is not None else alert.event_time)
    note = f"Resolved at {ended}: {alert.metric} = {alert.value:g} (threshold {alert.threshold:g})"
    return {"source": _SOURCE, "note": note[:_MAX_NOTE]}


class OpsgenieRouter(HttpRouter):
    """Sends alerts to Opsgenie through its Alert API.

    Args:
        api_key: an API integration's key (``HOSTSTREAM_OPSGENIE_API_KEY``);
            never logged or shown.
        base_url: ``https://api.opsgenie.com``, ``https://api.eu.opsgenie.com``
            or a local fake (``HOSTSTREAM_OPSGENIE_URL``).
        client: the HTTP client to use (default: a new one, closed by :meth:`aclose`).
        timeout_s: per-request timeout.
        name: the receiver's name in the routing file.
    """

    def __init__(
        self,
        api_key: SecretStr,
        base_url: str = DEFAULT_URL,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        name: str = "opsgenie",
    ) -> None:
        super().__init__(name, client, timeout_s)
        self._api_key = api_key
        self._base = base_url.rstrip("/")

    def __repr__(self) -> str:
        return (
            f"OpsgenieRouter(name={self.name!r}, base_url={self._base!r}, "
            "api_key=SecretStr('**********'))"
        )

    async def send(self, alert: AlertEvent) -> None:
        if alert.state is AlertState.RESOLVED:
            alias = quote(alert.dedup_key[:_MAX_ALIAS], safe="")
            url = f"{self._base}/v2/alerts/{alias}/close?identifierType=alias"
            body = opsgenie_close(alert)
        else:
            url = f"{self._base}/v2/alerts"
            body = opsgenie_create(alert)
        await post_json(
            self._client,
            self.name,
            url,
            body,
            headers={"Authorization": f"GenieKey {self._api_key.get_secret_value()}"},
            secrets=[self._api_key],
            accepted=(202,),
        )

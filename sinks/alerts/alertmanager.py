"""Prometheus Alertmanager API v2: ``POST {url}/api/v2/alerts``.

Alerts are sent as Prometheus sends them, so an existing Alertmanager's
routing tree, grouping, inhibitions and silences apply unchanged. Alertmanager
identifies an alert by its label set, which is therefore the same for the
FIRING and the RESOLVED event: the series' labels, the alert's labels, and
``alertname`` (the rule), ``severity``, ``instance`` (the host) and
``job="hoststream"``.

Prometheus re-sends firing alerts every minute and Alertmanager resolves one
that is not re-sent within its ``resolve_timeout``. hoststream sends each
transition once, so a FIRING alert carries an explicit ``endsAt`` far enough
ahead (``firing_ttl_s``, default one day) that it stays firing until its
RESOLVED event sets ``endsAt`` to the time it ended.

Alerts sent at the same moment (the sink delivers several dedup keys at
once) go out in one request, as Prometheus batches its notifications: the
API takes a list. If Alertmanager refuses such a list for its content, each
alert is sent again alone, so only the one at fault is refused.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote

import httpx

from hoststream.errors import PermanentDeliveryError
from hoststream.schemas import AlertEvent, AlertState
from hoststream.sinks.alerts.router import HttpRouter, iso8601, post_json

__all__ = ["DEFAULT_FIRING_TTL_S", "AlertmanagerRouter", "alertmanager_alert", "label_name"]

_INVALID_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")
DEFAULT_FIRING_TTL_S = 86_400.0
#: Alerts per request at most (Prometheus sends up to 256).
MAX_BATCH = 64


def label_name(name: str) -> str:
    """``name`` made a valid Prometheus label name; Alertmanager refuses others with 400."""
    cleaned = _INVALID_LABEL_CHARS.sub("_", name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


def _generator_url(base: str, alert: AlertEvent) -> str:
    # VictoriaMetrics' UI graphs the series the rule evaluated.
    selector = f'{alert.metric}{{instance="{alert.host}"}}'
    return f"{base.rstrip('/')}/vmui/#/?g0.expr={quote(selector, safe='')}"


def alertmanager_alert(
    alert: AlertEvent,
    *,
    firing_ttl_s: float = DEFAULT_FIRING_TTL_S,
    generator_base_url: str | None = None,
) -> dict[str, Any]:
    """One element of the ``POST /api/v2/alerts`` list for ``alert`` (exact JSON is tested)."""
    labels = {label_name(k): v for k, v in alert.series_labels.items()}
    labels.update({label_name(k): v for k, v in alert.labels.items()})
    labels.update(
        alertname=alert.rule, severity=alert.severity, instance=alert.host, job="hoststream"
    )
    if alert.state is AlertState.RESOLVED:
        ends_at = alert.ends_at if alert.ends_at is not None else alert.event_time
    else:
        ends_at = alert.event_time + round(firing_ttl_s * 1000)
    annotations = {label_name(k): v for k, v in alert.annotations.items() if v}
    annotations.setdefault("value", f"{alert.value:g}")
    annotations.setdefault("threshold", f"{alert.threshold:g}")
    body: dict[str, Any] = {
        "labels": dict(sorted(labels.items())),
        "annotations": dict(sorted(annotations.items())),
        "startsAt": iso8601(alert.starts_at),
        "endsAt": iso8601(ends_at),
    }
    if generator_base_url:
        body["generatorURL"] = _generator_url(generator_base_url, alert)
    return body


class AlertmanagerRouter(HttpRouter):
    """Sends alerts to one Alertmanager (or to each of an HA pair, one router each).

    Args:
        url: Alertmanager's base URL (``HOSTSTREAM_ALERTMANAGER_URL``), e.g.
            ``http://127.0.0.1:9094``.
        generator_base_url: where ``generatorURL`` points, normally
            VictoriaMetrics (``HOSTSTREAM_VM_URL``); None leaves it out.
        firing_ttl_s: how long a FIRING alert stays firing without its RESOLVED event.
        client: the HTTP client to use (default: a new one, closed by :meth:`aclose`).
        timeout_s: per-request timeout.
        name: the receiver's name in the routing file.
    """

    def __init__(
        self,
        url: str,
        *,
        generator_base_url: str | None = None,
        firing_ttl_s: float = DEFAULT_FIRING_TTL_S,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        name: str = "alertmanager",
    ) -> None:
        super().__init__(name, client, timeout_s)
        self._url = url.rstrip("/") + "/api/v2/alerts"
        self._generator = generator_base_url
        self._ttl = firing_ttl_s
        # Alerts waiting for the next request, each with its sender's future.
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._posts: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def __repr__(self) -> str:
        return f"AlertmanagerRouter(name={self.name!r}, url={self._url!r})"

    async def send(self, alert: AlertEvent) -> None:
        body = alertmanager_alert(alert, firing_ttl_s=self._ttl, generator_base_url=self._generator)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._waiting:
            # Runs once every sender ready now has added its alert.
            loop.call_soon(self._start_post, loop)
        self._waiting.append((body, done))
        await done

    def _start_post(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self._post_waiting())
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _post_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), MAX_BATCH):
            part = waiting[start : start + MAX_BATCH]
            try:
                await self._post([body for body, _ in part])
            except PermanentDeliveryError as exc:
                if len(part) == 1:
                    _settle(part, exc)
                else:
                    # One alert spoilt the list: find it by sending each alone.
                    for one in part:
                        await self._post_one(one)
            except Exception as exc:
                _settle(part, exc)
            else:
                _settle(part, None)

    async def _post_one(self, waiting: tuple[dict[str, Any], asyncio.Future[None]]) -> None:
        try:
            await self._post([waiting[0]])
        except Exception as exc:
            _settle([waiting], exc)
        else:
            _settle([waiting], None)

    async def _post(self, bodies: list[dict[str, Any]]) -> None:
        # Alertmanager answers 200 with an empty body.
        await post_json(self._client, self.name, self._url, bodies, accepted=(200,))


def _settle(
    waiting: list[tuple[dict[str, Any], asyncio.Future[None]]], error: Exception | None
) -> None:
    for _, done in waiting:
        if done.done():  # its sender was cancelled
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

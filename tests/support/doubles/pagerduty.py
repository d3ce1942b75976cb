"""A fake PagerDuty Events API v2 (``POST /v2/enqueue``).

A TEST DOUBLE, not PagerDuty: written from PagerDuty's published Events API v2
reference (request fields, limits, and the 202 / 400 / 429 answers and their
bodies). It keeps an incident per dedup key so tests can see trigger and
resolve take effect. It is stricter than PagerDuty on one point, on purpose:
unknown top-level fields are refused, so a misspelt field fails a test
instead of being ignored. With ``events_per_window`` it enforces PagerDuty's
rate limit per routing key (about 120 events over the 60 s before each
request): an event beyond it is answered 429 and not ingested.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.support.doubles.http import FakeHttpServer, Reply

__all__ = ["FakePagerDuty", "Incident"]

_ACTIONS = ("trigger", "acknowledge", "resolve")
_SEVERITIES = ("critical", "error", "warning", "info")
_TOP_LEVEL = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "images",
    "links",
    "client",
    "client_url",
}
_PAYLOAD = {
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
}
_ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")


@dataclass
class Incident:
    """What PagerDuty would show for one dedup key."""

    dedup_key: str
    status: str  # triggered | resolved
    summary: str
    triggers: int = 1


class FakePagerDuty(FakeHttpServer):
    """Events API v2 on a loopback port; :attr:`enqueue_url` is ``<url>/v2/enqueue``."""

    def __init__(self, events_per_window: int | None = None, window_s: float = 60.0) -> None:
        super().__init__()
        self.incidents: dict[str, Incident] = {}
        self.events_per_window = events_per_window
        self.window_s = window_s
        self.throttled = 0  # events answered 429 by the rate limit
        self._recent: dict[str, deque[float]] = {}
        self._limit_lock = threading.Lock()

    @property
    def enqueue_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    def fault_body(self, status: int) -> Any:
        if status == 429:
            return {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly.  "
                "Please retry later.",
            }
        return {"status": "error", "message": "Internal Server Error"}

    def accepted(self) -> list[dict[str, Any]]:
        """The bodies of the events answered 202, in order."""
        return [r.json() for r in self.requests if r.status == 202]

    def handle(self, method, path, query, headers, body) -> Reply:
        if method != "POST" or path != "/v2/enqueue":
            return Reply(404, {"status": "not found", "message": "Not Found"})
        try:
            event = json.loads(body)
        except ValueError:
            return _invalid("Request body is not valid JSON")
        errors = _validate(event)
        if errors:
            return _invalid(*errors)
        if self._over_limit(event["routing_key"]):
            return Reply(429, self.fault_body(429))
        action = event["event_action"]
        key = event.get("dedup_key") or uuid.uuid4().hex
        incident = self.incidents.get(key)
        if action == "trigger":
            if incident is None or incident.status == "resolved":
                self.incidents[key] = Incident(key, "triggered", event["payload"]["summary"])
            else:
                incident.triggers += 1
        elif action == "resolve" and incident is not None:
            incident.status = "resolved"
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    def _over_limit(self, routing_key: str) -> bool:
        if self.events_per_window is None:
            return False
        now = time.monotonic()
        with self._limit_lock:
            recent = self._recent.setdefault(routing_key, deque())
            while recent and recent[0] <= now - self.window_s:
                recent.popleft()
            if len(recent) >= self.events_per_window:
                self.throttled += 1
                return True
            recent.append(now)
            return False


def _invalid(*errors: str) -> Reply:
    return Reply(
        400,
        {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)},
    )


def _validate(event: Any) -> list[str]:
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = [f"'{k}' is not a recognised field" for k in sorted(set(event) - _TOP_LEVEL)]
    key = event.get("routing_key")
    if not isinstance(key, str) or not _ROUTING_KEY.fullmatch(key):
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in _ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append(f"'dedup_key' is required for {action} events")
    if action == "trigger":
        errors += _validate_payload(event.get("payload"))
    for link in event.get("links", []) if isinstance(event.get("links", []), list) else [None]:
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            errors.append("'links' must be a list of objects with an 'href'")
    for name in ("client", "client_url"):
        if name in event and not isinstance(event[name], str):
            errors.append(f"'{name}' must be a string")
    return errors


def _validate_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is required for trigger events"]
    errors = [f"'payload.{k}' is not a recognised field" for k in sorted(set(payload) - _PAYLOAD)]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > 1024:
        errors.append("'payload.summary' is longer than 1024 characters")
    if not isinstance(payload.get("source"), str) or not payload["source"]:
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in _SEVERITIES:
        errors.append("'payload.severity' must be one of critical, error, warning, info")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            errors.append("'payload.timestamp' is not an ISO 8601 timestamp")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict | str):
        errors.append("'payload.custom_details' must be an object")
    return errors

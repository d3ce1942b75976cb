"""A fake Opsgenie Alert API v2 (create, and close by alias).

A TEST DOUBLE, not Opsgenie: written from Opsgenie's published Alert API
reference: ``POST /v2/alerts`` and ``POST /v2/alerts/{identifier}/close``
with ``identifierType=alias``, ``Authorization: GenieKey <key>``, the field
limits, and the answers (202 with ``result``/``took``/``requestId``; 401 for a
wrong key; 422 with per-field errors for a body Opsgenie cannot process; 400
for one that is not JSON; 429 when rate-limited). It keeps alerts by alias so
tests can see create and close take effect. Unknown fields are refused, which
Opsgenie does not do: a misspelt field should fail a test.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tests.support.doubles.http import FakeHttpServer, Reply

__all__ = ["FakeOpsgenie", "OpsgenieAlert"]

_CREATE_FIELDS = {
    "message",
    "alias",
    "description",
    "responders",
    "visibleTo",
    "actions",
    "tags",
    "details",
    "entity",
    "source",
    "priority",
    "user",
    "note",
}
_CLOSE_FIELDS = {"user", "source", "note"}
_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
_LIMITS = {"message": 130, "alias": 512, "description": 15000, "entity": 512, "source": 100}


@dataclass
class OpsgenieAlert:
    """What Opsgenie would show for one alias."""

    alias: str
    status: str  # open | closed
    message: str
    priority: str
    count: int = 1


class FakeOpsgenie(FakeHttpServer):
    """The Alert API on a loopback port; only ``GenieKey <api_key>`` is let in.

    Args:
        api_key: the key requests must carry.
    """

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.alerts: dict[str, OpsgenieAlert] = {}

    def fault_body(self, status: int) -> Any:
        message = "You are making too many requests!" if status == 429 else "Internal error"
        return _meta({"message": message})

    def handle(self, method, path, query, headers, body) -> Reply:
        if headers.get("authorization") != f"GenieKey {self.api_key}":
            return Reply(401, _meta({"message": "Could not authenticate"}))
        if method != "POST":
            return Reply(405, _meta({"message": "Method not allowed"}))
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return Reply(400, _meta({"message": "Request body is not valid JSON"}))
        if not isinstance(data, dict):
            return Reply(400, _meta({"message": "Request body must be a JSON object"}))
        parts = path.strip("/").split("/")
        if parts == ["v2", "alerts"]:
            return self._create(data)
        if len(parts) == 4 and parts[:2] == ["v2", "alerts"] and parts[3] == "close":
            return self._close(unquote(parts[2]), query.get("identifierType", ["id"])[0], data)
        return Reply(404, _meta({"message": "Not found"}))

    def _create(self, data: dict[str, Any]) -> Reply:
        errors: dict[str, str] = {
            k: "is not a recognised field" for k in set(data) - _CREATE_FIELDS
        }
        message = data.get("message")
        if not isinstance(message, str) or not message.strip():
            errors["message"] = "Message can not be empty."
        for name, limit in _LIMITS.items():
            if name in data and (not isinstance(data[name], str) or len(data[name]) > limit):
                errors[name] = f"must be a string of at most {limit} characters"
        if "priority" in data and data["priority"] not in _PRIORITIES:
            errors["priority"] = "must be one of P1, P2, P3, P4, P5"
        tags = data.get("tags", [])
        if not isinstance(tags, list) or len(tags) > 20:
            errors["tags"] = "must be a list of at most 20 tags"
        elif any(not isinstance(t, str) or len(t) > 50 for t in tags):
            errors["tags"] = "each tag must be a string of at most 50 characters"
        details = data.get("details", {})
        if not isinstance(details, dict) or any(
            not isinstance(k, str) or not isinstance(v, str) for k, v in details.items()
        ):
            errors["details"] = "must be a map of string keys to string values"
        elif sum(len(k) + len(v) for k, v in details.items()) > 8000:
            errors["details"] = "must be at most 8000 characters in total"
        if errors:
            return Reply(
                422,
                _meta(
                    {
                        "message": "Request body is not processable. Please check the errors.",
                        "errors": errors,
                    }
                ),
            )
        alias = data.get("alias") or uuid.uuid4().hex
        existing = self.alerts.get(alias)
        if existing is not None and existing.status == "open":
            existing.count += 1  # Opsgenie deduplicates open alerts by alias
        else:
            self.alerts[alias] = OpsgenieAlert(alias, "open", message, data.get("priority", "P3"))
        return Reply(202, _meta({"result": "Request will be processed"}))

    def _close(self, identifier: str, identifier_type: str, data: dict[str, Any]) -> Reply:
        unknown = set(data) - _CLOSE_FIELDS
        if unknown or identifier_type not in ("id", "alias", "tiny"):
            return Reply(
                422,
                _meta(
                    {
                        "message": "Request body is not processable. Please check the errors.",
                        "errors": {k: "is not a recognised field" for k in unknown}
                        or {"identifierType": "must be id, alias or tiny"},
                    }
                ),
            )
        if identifier_type == "alias" and identifier in self.alerts:
            self.alerts[identifier].status = "closed"
        # Opsgenie processes requests later: an unknown alias is still 202.
        return Reply(202, _meta({"result": "Request will be processed"}))


def _meta(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "took": 0.01, "requestId": str(uuid.uuid4())}

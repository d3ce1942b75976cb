"""Every instant in the API's JSON is integer UTC milliseconds, and the OpenAPI document says so."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from hoststream.api.app import create_app
from hoststream.api.models import UTC_MS
from hoststream.config import Settings

#: The response fields that hold an instant, by schema.
TIME_FIELDS = {
    "HostOut": ["last_seen"],
    "LatestSample": ["timestamp"],
    "AggregateOut": ["window_start", "window_end"],
    "AlertOut": ["starts_at", "ends_at"],
}


def openapi() -> dict[str, Any]:
    return create_app(Settings(api_secret=SecretStr("u" * 48))).openapi()


def _types(prop: dict[str, Any]) -> set[str]:
    # An optional field is anyOf [its type, null].
    return {branch.get("type", "") for branch in prop.get("anyOf", [prop])} - {"null"}


def test_every_response_time_is_documented_as_integer_utc_milliseconds() -> None:
    schemas = openapi()["components"]["schemas"]
    for schema, fields in TIME_FIELDS.items():
        for name in fields:
            prop = schemas[schema]["properties"][name]
            assert _types(prop) == {"integer"}, (schema, name, prop)
            assert UTC_MS in prop["description"], (schema, name)


def test_no_other_response_field_is_a_time_in_another_form() -> None:
    # A field named like an instant but missing from TIME_FIELDS would be a
    # second form creeping in (e.g. float seconds).
    timeish = ("time", "seen", "_at", "timestamp", "window_start", "window_end")
    for schema, body in openapi()["components"]["schemas"].items():
        for name in body.get("properties", {}):
            if any(word in name for word in timeish):
                assert name in TIME_FIELDS.get(schema, []), (schema, name)


def test_time_query_parameters_are_utc_milliseconds_too() -> None:
    parameters = openapi()["paths"]["/api/v1/aggregates"]["get"]["parameters"]
    bounds = {p["name"]: p for p in parameters if p["name"] in ("start", "end")}
    assert sorted(bounds) == ["end", "start"]
    for parameter in bounds.values():
        assert _types(parameter["schema"]) == {"integer"}
        assert UTC_MS in parameter["description"]

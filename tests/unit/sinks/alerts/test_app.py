"""Building the alert sink from the settings: receivers, routing file, refusals at start."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from hoststream.config import Settings as _Settings
from hoststream.errors import ConfigurationError, RoutingFileError
from hoststream.sinks.alerts.app import build_alert_sink, build_routers, load_routing
from hoststream.sinks.alerts.opsgenie import EU_URL
from tests.support.alerts import GENIE_KEY, PD_KEY, firing


def Settings(**values) -> _Settings:
    """Settings with no receiver unless given: HOSTSTREAM_* variables must not leak in."""
    unset = {
        "alertmanager_url": None,
        "pagerduty_routing_key": None,
        "opsgenie_api_key": None,
        "alert_routes_file": None,
    }
    return _Settings(**{**unset, **values})


def test_only_configured_receivers_get_a_router():
    settings = Settings(alertmanager_url="http://127.0.0.1:9094", opsgenie_api_key=GENIE_KEY)
    assert sorted(build_routers(settings)) == ["alertmanager", "opsgenie"]


def test_the_eu_opsgenie_url_is_an_option():
    [router] = build_routers(Settings(opsgenie_api_key=GENIE_KEY, opsgenie_url=EU_URL)).values()
    assert "api.eu.opsgenie.com" in repr(router)


def test_without_any_receiver_the_sink_refuses_to_start():
    with pytest.raises(ConfigurationError) as caught:
        build_alert_sink(Settings(), registry=CollectorRegistry())
    assert caught.value.setting == "HOSTSTREAM_ALERTMANAGER_URL"


def test_the_built_in_routes_follow_what_is_configured():
    settings = Settings(alertmanager_url="http://127.0.0.1:9094")
    routes = load_routing(settings, ["alertmanager"])
    assert routes.receivers_for(firing(severity="critical")) == ("alertmanager",)


def test_a_routing_file_naming_an_unconfigured_receiver_stops_the_sink(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(
        "routes:\n  - match: {severity: critical}\n    receivers: [pagerduty]\n"
        "default: {receivers: [alertmanager]}\n"
    )
    settings = Settings(alertmanager_url="http://127.0.0.1:9094", alert_routes_file=path)
    with pytest.raises(RoutingFileError) as caught:
        build_alert_sink(settings, registry=CollectorRegistry())
    assert str(caught.value) == (
        f"HOSTSTREAM_ALERT_ROUTES_FILE: {path}:3: receiver 'pagerduty' is not configured: "
        "set HOSTSTREAM_PAGERDUTY_ROUTING_KEY"
    )
    ok = Settings(
        alertmanager_url="http://127.0.0.1:9094",
        pagerduty_routing_key=PD_KEY,
        alert_routes_file=path,
    )
    assert load_routing(ok, ["alertmanager", "pagerduty"]).receivers == {
        "pagerduty",
        "alertmanager",
    }

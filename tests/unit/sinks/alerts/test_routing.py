"""The routing file: matching, continue, default, and refusing bad files with line and reason."""

from __future__ import annotations

import pytest

from hoststream.errors import RoutingFileError
from hoststream.sinks.alerts.routing import DEFAULT_ROUTES_FILE, load_routes, parse_routes
from tests.support.alerts import firing

ALL = ["pagerduty", "opsgenie", "alertmanager"]

ROUTES = """\
routes:
  - name: db-pages
    match: {severity: critical}
    match_re: {team: "db|storage"}
    receivers: [pagerduty]
    continue: true
  - name: criticals
    match: {severity: critical}
    receivers: [opsgenie, pagerduty]
  - name: web-warnings
    match: {severity: warning, team: web}
    receivers: [opsgenie]
default:
  receivers: [alertmanager]
"""


def table():
    return parse_routes(ROUTES, "routes.yaml", available=ALL)


def test_first_match_stops_unless_continue():
    routes = table()
    # db-pages matches and continues; criticals matches and stops; receivers once each.
    assert routes.receivers_for(firing(labels={"team": "db"})) == ("pagerduty", "opsgenie")
    # db-pages does not match (team web): criticals alone.
    assert routes.receivers_for(firing(labels={"team": "web"})) == ("opsgenie", "pagerduty")


def test_regex_is_anchored_and_a_missing_label_is_empty():
    routes = table()
    # "dbx" contains "db" but the regex must match the whole value.
    assert routes.receivers_for(firing(labels={"team": "dbx"})) == ("opsgenie", "pagerduty")
    assert routes.receivers_for(firing(labels={})) == ("opsgenie", "pagerduty")
    empty = parse_routes(
        'routes:\n  - match: {team: ""}\n    receivers: [opsgenie]\n'
        "default: {receivers: [alertmanager]}\n",
        "x.yaml",
        available=ALL,
    )
    assert empty.receivers_for(firing(labels={})) == ("opsgenie",)
    assert empty.receivers_for(firing(labels={"team": "web"})) == ("alertmanager",)


def test_equality_on_several_labels_and_the_default():
    routes = table()
    assert routes.receivers_for(firing(severity="warning", labels={"team": "web"})) == ("opsgenie",)
    assert routes.receivers_for(firing(severity="warning", labels={"team": "db"})) == (
        "alertmanager",
    )
    assert routes.receivers_for(firing(severity="info")) == ("alertmanager",)


def test_identifying_fields_can_be_matched():
    routes = parse_routes(
        "routes:\n"
        "  - match: {alertname: HighLoad, host: web-1, instance: web-1, metric: node_load1}\n"
        "    receivers: [opsgenie]\n"
        "default: {receivers: [alertmanager]}\n",
        "x.yaml",
        available=ALL,
    )
    assert routes.receivers_for(firing()) == ("opsgenie",)
    assert routes.receivers_for(firing(host="web-2")) == ("alertmanager",)


def test_a_route_without_conditions_matches_everything():
    routes = parse_routes(
        "routes:\n  - receivers: [opsgenie]\ndefault: {receivers: [alertmanager]}\n",
        "x.yaml",
        available=ALL,
    )
    assert routes.receivers_for(firing(severity="info")) == ("opsgenie",)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("routes: []\n", 1, "`default:` is missing"),
        ("default:\n  receivers: [alertmanager]\nroute: []\n", 3, "unknown key 'route'"),
        (
            "routes:\n  - match: {severity: critical}\n    recievers: [pagerduty]\n"
            "default: {receivers: [alertmanager]}\n",
            3,
            "unknown key 'recievers'",
        ),
        (
            "routes:\n  - match_re: {team: 'db(('}\n    receivers: [pagerduty]\n"
            "default: {receivers: [alertmanager]}\n",
            2,
            "is not a regular expression",
        ),
        (
            "routes:\n  - match: {severity: critical}\n    receivers: [pagerduty, slack]\n"
            "default: {receivers: [alertmanager]}\n",
            3,
            "unknown receiver 'slack'",
        ),
        (
            "routes:\n  - match: {severity: critical}\n    receivers: [pagerduty]\n"
            "    continue: maybe\ndefault: {receivers: [alertmanager]}\n",
            4,
            "`continue` must be true or false",
        ),
        (
            "routes:\n  - match: {bad-label: x}\n    receivers: [pagerduty]\n"
            "default: {receivers: [alertmanager]}\n",
            2,
            "'bad-label' is not a label name",
        ),
        (
            "routes:\n  - match: {severity: critical}\n    receivers: []\n"
            "default: {receivers: [alertmanager]}\n",
            3,
            "non-empty list",
        ),
        ("default:\n  receivers: [alertmanager]\ndefault: {receivers: [opsgenie]}\n", 3, "twice"),
        ("default: {receivers: [alertmanager]\n", 2, "not valid YAML"),
        ("routes:\n  - receivers: [pagerduty]\n    match: [severity]\ndefault: {}\n", 3, "mapping"),
    ],
)
def test_an_invalid_file_is_refused_with_its_line_and_reason(text, line, reason):
    with pytest.raises(RoutingFileError) as caught:
        parse_routes(text, "routes.yaml", available=ALL)
    assert caught.value.line == line, str(caught.value)
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"HOSTSTREAM_ALERT_ROUTES_FILE: routes.yaml:{line}: ")


def test_a_file_of_the_users_may_name_only_configured_receivers():
    with pytest.raises(RoutingFileError) as caught:
        parse_routes(
            ROUTES,
            "routes.yaml",
            available=["alertmanager", "opsgenie"],
            unavailable={"pagerduty": "HOSTSTREAM_PAGERDUTY_ROUTING_KEY"},
        )
    assert caught.value.line == 5
    assert "'pagerduty' is not configured: set HOSTSTREAM_PAGERDUTY_ROUTING_KEY" in str(
        caught.value
    )


def test_the_built_in_file_uses_every_receiver_when_all_are_configured():
    routes = load_routes(DEFAULT_ROUTES_FILE, available=ALL)
    assert routes.receivers_for(firing(severity="critical")) == tuple(ALL)
    assert routes.receivers_for(firing(severity="warning")) == ("opsgenie", "alertmanager")
    assert routes.receivers_for(firing(severity="info")) == ("alertmanager",)


def test_the_built_in_file_leaves_out_unconfigured_receivers_and_never_routes_nowhere():
    missing = {
        "pagerduty": "HOSTSTREAM_PAGERDUTY_ROUTING_KEY",
        "alertmanager": "HOSTSTREAM_ALERTMANAGER_URL",
    }
    routes = load_routes(
        DEFAULT_ROUTES_FILE, available=["opsgenie"], unavailable=missing, strict=False
    )
    assert routes.receivers_for(firing(severity="critical")) == ("opsgenie",)
    # The default route named only Alertmanager: it falls back to what is configured.
    assert routes.receivers_for(firing(severity="info")) == ("opsgenie",)
    assert routes.receivers == {"opsgenie"}


def test_a_file_that_cannot_be_read_is_named(tmp_path):
    with pytest.raises(RoutingFileError, match="cannot read it"):
        load_routes(tmp_path / "absent.yaml", available=ALL)

"""The exact JSON each router sends."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from hoststream.sinks.alerts.alertmanager import alertmanager_alert, label_name
from hoststream.sinks.alerts.opsgenie import opsgenie_close, opsgenie_create, opsgenie_priority
from hoststream.sinks.alerts.pagerduty import pagerduty_event
from hoststream.sinks.alerts.router import iso8601
from tests.support.alerts import PD_KEY, STARTS_AT, firing, resolved


def test_iso8601_is_utc_with_milliseconds():
    assert iso8601(STARTS_AT) == "2026-11-27T14:00:00.000Z"
    assert iso8601(STARTS_AT + 1_234) == "2026-11-27T14:00:01.234Z"


def test_pagerduty_trigger():
    alert = firing()
    assert pagerduty_event(alert, SecretStr(PD_KEY)) == {
        "routing_key": PD_KEY,
        "dedup_key": "HighLoad/web-1/node_load1",
        "event_action": "trigger",
        "payload": {
            "summary": "Load 12.5 on web-1",
            "source": "web-1",
            "severity": "critical",
            "timestamp": "2026-11-27T14:00:00.000Z",
            "component": "node_load1",
            "group": "web",
            "class": "HighLoad",
            "custom_details": {
                "rule": "HighLoad",
                "severity": "critical",
                "metric": "node_load1",
                "value": 12.5,
                "threshold": 8.0,
                "labels": {"team": "web"},
                "series_labels": {},
                "annotations": {
                    "summary": "Load 12.5 on web-1",
                    "description": "node_load1 above 8 for 1m",
                    "runbook_url": "https://runbooks.example.com/high-load",
                },
            },
        },
        "client": "hoststream",
        "links": [{"href": "https://runbooks.example.com/high-load", "text": "Runbook"}],
    }


def test_pagerduty_resolve_carries_only_what_pagerduty_reads():
    assert pagerduty_event(resolved(firing()), SecretStr(PD_KEY)) == {
        "routing_key": PD_KEY,
        "dedup_key": "HighLoad/web-1/node_load1",
        "event_action": "resolve",
    }


def test_pagerduty_without_annotations_or_group_and_with_an_unknown_severity():
    event = pagerduty_event(firing(severity="page", labels={}, annotations={}), SecretStr(PD_KEY))
    assert event["payload"]["summary"] == "HighLoad on web-1: node_load1 = 12.5 (threshold 8)"
    assert event["payload"]["severity"] == "error"
    assert event["payload"]["custom_details"]["severity"] == "page"
    assert "group" not in event["payload"]
    assert "links" not in event


def test_opsgenie_create():
    assert opsgenie_create(firing()) == {
        "message": "Load 12.5 on web-1",
        "alias": "HighLoad/web-1/node_load1",
        "description": "node_load1 above 8 for 1m\n\n"
        "Runbook: https://runbooks.example.com/high-load",
        "tags": ["severity:critical", "rule:HighLoad", "host:web-1", "team:web"],
        "details": {
            "rule": "HighLoad",
            "metric": "node_load1",
            "value": "12.5",
            "threshold": "8",
            "starts_at": "2026-11-27T14:00:00.000Z",
            "runbook_url": "https://runbooks.example.com/high-load",
        },
        "entity": "web-1",
        "source": "hoststream",
        "priority": "P1",
    }


def test_opsgenie_close():
    assert opsgenie_close(resolved(firing())) == {
        "source": "hoststream",
        "note": "Resolved at 2026-11-27T14:10:00.000Z: node_load1 = 3 (threshold 8)",
    }


def test_opsgenie_limits_message_and_tags():
    body = opsgenie_create(
        firing(
            annotations={"summary": "x" * 300},
            labels={f"l{i:02d}": "v" * 80 for i in range(30)},
        )
    )
    assert len(body["message"]) == 130
    assert len(body["tags"]) == 20
    assert all(len(t) <= 50 for t in body["tags"])


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("critical", "P1"), ("error", "P2"), ("warning", "P3"), ("info", "P5"), ("odd", "P3")],
)
def test_opsgenie_priority(severity, priority):
    assert opsgenie_priority(severity) == priority


def test_alertmanager_firing():
    alert = firing(labels={"team": "web", "kube.namespace": "prod"})
    assert alertmanager_alert(alert, generator_base_url="http://127.0.0.1:8428") == {
        "labels": {
            "alertname": "HighLoad",
            "instance": "web-1",
            "job": "hoststream",
            "kube_namespace": "prod",
            "severity": "critical",
            "team": "web",
        },
        "annotations": {
            "description": "node_load1 above 8 for 1m",
            "runbook_url": "https://runbooks.example.com/high-load",
            "summary": "Load 12.5 on web-1",
            "threshold": "8",
            "value": "12.5",
        },
        "startsAt": "2026-11-27T14:00:00.000Z",
        # event_time + one day: firing until the RESOLVED event says otherwise.
        "endsAt": "2026-11-28T14:00:01.000Z",
        "generatorURL": "http://127.0.0.1:8428/vmui/#/?g0.expr="
        "node_load1%7Binstance%3D%22web-1%22%7D",
    }


def test_alertmanager_resolved_has_the_same_labels_and_ends_when_it_ended():
    alert = firing()
    fired = alertmanager_alert(alert)
    done = alertmanager_alert(resolved(alert))
    assert done["labels"] == fired["labels"]
    assert done["startsAt"] == fired["startsAt"]
    assert done["endsAt"] == "2026-11-27T14:10:00.000Z"
    assert "generatorURL" not in done


def test_alertmanager_series_labels_keep_alerts_of_two_series_apart():
    one = firing()
    two = firing()
    object.__setattr__(one, "series_labels", {"device": "sda"})
    object.__setattr__(two, "series_labels", {"device": "sdb"})
    assert alertmanager_alert(one)["labels"] != alertmanager_alert(two)["labels"]


@pytest.mark.parametrize(
    ("name", "expected"), [("ok_name", "ok_name"), ("a.b-c", "a_b_c"), ("9lives", "_9lives")]
)
def test_label_names_are_made_valid(name, expected):
    assert label_name(name) == expected

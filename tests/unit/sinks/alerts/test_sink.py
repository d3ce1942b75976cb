"""The alert sink: routing, order per dedup key, retries, dead letters."""

from __future__ import annotations

import pytest

from hoststream.errors import (
    InvalidRecordError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SinkBackpressureError,
    SinkUnavailableError,
)
from hoststream.schemas import AlertEvent
from hoststream.sinks.alerts.routing import parse_routes
from hoststream.sinks.alerts.sink import AlertSink, DeliveryPolicy
from hoststream.sinks.base import SinkRecord
from tests.support.alerts import firing, resolved

ROUTES = """\
routes:
  - match: {severity: critical}
    receivers: [pagerduty, alertmanager]
default:
  receivers: [alertmanager]
"""


class ScriptedRouter:
    """Records what it was sent; raises the scripted errors first, one per send."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[str, str]] = []
        self.script: list[Exception] = []
        self.closed = False

    async def send(self, alert: AlertEvent) -> None:
        if self.script:
            raise self.script.pop(0)
        self.sent.append((alert.dedup_key, alert.state.value))

    async def aclose(self) -> None:
        self.closed = True


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def records(*alerts: AlertEvent) -> list[SinkRecord[AlertEvent]]:
    return [SinkRecord("alerts", 0, i, a.dedup_key.encode(), b"", a) for i, a in enumerate(alerts)]


@pytest.fixture
def setup():
    routers = {
        "pagerduty": ScriptedRouter("pagerduty"),
        "alertmanager": ScriptedRouter("alertmanager"),
    }
    sleeps = Sleeps()
    sink = AlertSink(
        parse_routes(ROUTES, "r.yaml", available=list(routers)),
        routers,
        policy=DeliveryPolicy(attempts=3, initial_s=0.5, max_s=4.0),
        sleep=sleeps,
    )
    yield sink, routers, sleeps
    sink.close()


def test_alerts_reach_the_receivers_of_their_routes_in_order(setup):
    sink, routers, _ = setup
    page = firing("a")
    info = firing("b", severity="info")
    assert sink.write(records(page, info, resolved(page))) == []
    assert routers["pagerduty"].sent == [("a", "FIRING"), ("a", "RESOLVED")]
    assert sorted(routers["alertmanager"].sent) == [
        ("a", "FIRING"),
        ("a", "RESOLVED"),
        ("b", "FIRING"),
    ]
    # Per key the order holds even though keys are delivered in parallel.
    a_events = [e for e in routers["alertmanager"].sent if e[0] == "a"]
    assert a_events == [("a", "FIRING"), ("a", "RESOLVED")]


def test_a_transient_failure_is_retried_within_the_write_with_growing_delays(setup):
    sink, routers, sleeps = setup
    routers["pagerduty"].script = [
        RetryableDeliveryError("pagerduty", "HTTP 429"),
        RetryableDeliveryError("pagerduty", "HTTP 502"),
    ]
    assert sink.write(records(firing("a"))) == []
    assert routers["pagerduty"].sent == [("a", "FIRING")]
    assert len(sleeps.delays) == 2
    # Equal jitter: each delay is between half and all of its ceiling (0.5, then 1.0).
    assert 0.25 <= sleeps.delays[0] <= 0.5
    assert 0.5 <= sleeps.delays[1] <= 1.0


def test_retry_after_is_honoured(setup):
    sink, routers, sleeps = setup
    routers["pagerduty"].script = [RetryableDeliveryError("pagerduty", "HTTP 429", retry_after=3)]
    sink.write(records(firing("a")))
    assert sleeps.delays == [3]


def test_a_receiver_still_down_fails_the_batch_and_the_retry_skips_what_was_delivered(setup):
    sink, routers, _ = setup
    down = [RetryableDeliveryError("pagerduty", "HTTP 503") for _ in range(3)]
    routers["pagerduty"].script = list(down)
    page = firing("a")
    batch = records(page, resolved(page), firing("b", severity="info"))
    with pytest.raises(SinkUnavailableError, match="not delivered yet"):
        sink.write(batch)
    # Alertmanager got everything; PagerDuty got nothing, and in particular
    # not the RESOLVED whose FIRING it has not taken yet.
    assert sorted(routers["alertmanager"].sent) == [
        ("a", "FIRING"),
        ("a", "RESOLVED"),
        ("b", "FIRING"),
    ]
    assert routers["pagerduty"].sent == []
    assert len(routers["pagerduty"].script) == 0  # 3 tries of the FIRING, none of the RESOLVED
    # The loop hands the same batch back once PagerDuty is up.
    assert sink.write(batch) == []
    assert routers["pagerduty"].sent == [("a", "FIRING"), ("a", "RESOLVED")]
    assert sorted(routers["alertmanager"].sent) == [
        ("a", "FIRING"),
        ("a", "RESOLVED"),
        ("b", "FIRING"),
    ]


def test_a_long_retry_after_is_left_to_the_consumer_loop(setup):
    sink, routers, sleeps = setup
    routers["pagerduty"].script = [RetryableDeliveryError("pagerduty", "HTTP 429", retry_after=60)]
    with pytest.raises(SinkBackpressureError) as caught:
        sink.write(records(firing("a")))
    assert caught.value.retry_after == 60
    assert sleeps.delays == []


def test_a_refused_alert_is_rejected_once_and_still_reaches_the_other_receivers(setup):
    sink, routers, _ = setup
    routers["pagerduty"].script = [
        PermanentDeliveryError("pagerduty", "HTTP 400: Event object is invalid")
    ]
    batch = records(firing("a"))
    [rejection] = sink.write(batch)
    assert rejection.record is batch[0]
    assert rejection.error_class == "AlertDeliveryRefused"
    assert rejection.reason == "pagerduty: HTTP 400: Event object is invalid"
    assert routers["alertmanager"].sent == [("a", "FIRING")]
    # The next batch starts clean.
    assert sink.write(records(firing("c", severity="info"))) == []


def test_a_refusal_survives_a_retry_of_its_batch(setup):
    sink, routers, _ = setup
    page = firing("a")
    routers["pagerduty"].script = [PermanentDeliveryError("pagerduty", "HTTP 400")]
    routers["alertmanager"].script = [RetryableDeliveryError("alertmanager", "down")] * 3
    batch = records(page)
    with pytest.raises(SinkUnavailableError):
        sink.write(batch)
    [rejection] = sink.write(batch)
    assert "pagerduty: HTTP 400" in rejection.reason
    assert routers["pagerduty"].sent == []  # not sent again after its refusal
    assert routers["alertmanager"].sent == [("a", "FIRING")]


def test_an_alert_without_a_dedup_key_is_invalid(setup):
    sink, _, _ = setup
    with pytest.raises(InvalidRecordError):
        sink.check(firing(""))


def test_routes_naming_a_receiver_without_a_router_are_refused():
    with pytest.raises(ValueError, match="pagerduty"):
        AlertSink(
            parse_routes(ROUTES, "r.yaml", available=["pagerduty", "alertmanager"]),
            {"alertmanager": ScriptedRouter("alertmanager")},
        )


def test_close_closes_the_routers(setup):
    sink, routers, _ = setup
    sink.close()
    assert all(r.closed for r in routers.values())
    sink.close()  # a second close does nothing

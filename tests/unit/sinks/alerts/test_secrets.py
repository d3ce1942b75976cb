"""Routing keys and API keys never appear in logs, reprs, exceptions or dead letters."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from pydantic import SecretStr

from hoststream.config import Settings
from hoststream.errors import PermanentDeliveryError, RetryableDeliveryError
from hoststream.sinks.alerts.app import build_routers
from hoststream.sinks.alerts.opsgenie import OpsgenieRouter
from hoststream.sinks.alerts.pagerduty import PagerDutyRouter
from hoststream.sinks.alerts.routing import parse_routes
from hoststream.sinks.alerts.sink import AlertSink, DeliveryPolicy
from hoststream.sinks.base import SinkRecord
from tests.support.alerts import GENIE_KEY, PD_KEY, firing, resolved

SECRETS = (PD_KEY, GENIE_KEY)


def echoing(status: int) -> httpx.MockTransport:
    """A receiver that quotes the whole request back in its error, as some do."""

    def handler(request: httpx.Request) -> httpx.Response:
        echoed = f"{request.headers.get('authorization')} {request.content.decode()}"
        return httpx.Response(status, text=f"bad request: {echoed}")

    return httpx.MockTransport(handler)


def routers(transport: httpx.MockTransport):
    client = httpx.AsyncClient(transport=transport)
    return (
        PagerDutyRouter(SecretStr(PD_KEY), "https://pd.invalid/v2/enqueue", client=client),
        OpsgenieRouter(SecretStr(GENIE_KEY), "https://og.invalid", client=client),
    )


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    ("status", "error"), [(400, PermanentDeliveryError), (500, RetryableDeliveryError)]
)
def test_errors_quoting_the_request_are_redacted(status, error):
    for router in routers(echoing(status)):
        with pytest.raises(error) as caught:
            asyncio.run(router.send(firing()))
        assert_clean(str(caught.value))
        assert_clean(repr(caught.value))
        assert "**********" in str(caught.value)


def test_router_reprs_hide_the_keys():
    for router in routers(echoing(202)):
        assert_clean(repr(router))
        assert_clean(str(router))


def test_settings_hide_the_keys():
    settings = Settings(
        pagerduty_routing_key=PD_KEY,
        opsgenie_api_key=GENIE_KEY,
        alertmanager_url="http://127.0.0.1:1",
    )
    assert_clean(repr(settings))
    assert_clean(str(settings.model_dump()))
    assert_clean(repr(build_routers(settings)))


def test_nothing_a_sink_logs_or_dead_letters_holds_a_key(caplog):
    caplog.set_level(logging.DEBUG)
    pd, og = routers(echoing(400))
    sink = AlertSink(
        parse_routes(
            "default: {receivers: [pagerduty, opsgenie]}\n",
            "r.yaml",
            available=["pagerduty", "opsgenie"],
        ),
        {"pagerduty": pd, "opsgenie": og},
        policy=DeliveryPolicy(attempts=1),
    )
    alert = firing()
    batch = [
        SinkRecord("alerts", 0, 0, b"k", b"", alert),
        SinkRecord("alerts", 0, 1, b"k", b"", resolved(alert)),
    ]
    try:
        rejections = sink.write(batch)
    finally:
        sink.close()
    assert len(rejections) == 2
    for rejection in rejections:
        assert_clean(rejection.reason)
    assert caplog.records, "the refusals should have been logged"
    assert_clean(caplog.text)


def test_transport_errors_do_not_carry_the_key():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused {request.headers.get('authorization')}", request=request)

    _, og = routers(httpx.MockTransport(refuse))
    with pytest.raises(RetryableDeliveryError) as caught:
        asyncio.run(og.send(firing()))
    assert_clean(str(caught.value))
    assert caught.value.__cause__ is None

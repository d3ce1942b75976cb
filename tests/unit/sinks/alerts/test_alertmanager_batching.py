"""Alerts sent to Alertmanager at the same moment share one request.

The HTTP calls go to an ``httpx.MockTransport`` handler (a test double).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from hoststream.errors import PermanentDeliveryError, RetryableDeliveryError
from hoststream.sinks.alerts.alertmanager import AlertmanagerRouter
from tests.support.alerts import firing


class Recorder:
    """Answers each request with ``status(alerts)``; keeps the alert keys of each request."""

    def __init__(self, status=lambda alerts: 200) -> None:
        self.requests: list[list[str]] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        alerts = json.loads(request.content)
        self.requests.append([a["labels"]["key"] for a in alerts])
        return httpx.Response(self.status(alerts))


def send_together(recorder: Recorder, keys: list[str]) -> list[BaseException | None]:
    async def main() -> list[BaseException | None]:
        router = AlertmanagerRouter(
            "http://am.invalid", client=httpx.AsyncClient(transport=httpx.MockTransport(recorder))
        )
        alerts = [firing(key, labels={"key": key}) for key in keys]
        return await asyncio.gather(*(router.send(a) for a in alerts), return_exceptions=True)

    return asyncio.run(main())


def test_alerts_sent_at_the_same_moment_go_in_one_request() -> None:
    recorder = Recorder()
    assert send_together(recorder, ["a", "b", "c"]) == [None, None, None]
    assert recorder.requests == [["a", "b", "c"]]


def test_a_list_refused_for_its_content_is_sent_again_alert_by_alert() -> None:
    def refuse_b(alerts: list[dict]) -> int:
        return 400 if any(a["labels"]["key"] == "b" for a in alerts) else 200

    recorder = Recorder(refuse_b)
    results = send_together(recorder, ["a", "b", "c"])
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], PermanentDeliveryError)
    assert recorder.requests == [["a", "b", "c"], ["a"], ["b"], ["c"]]


def test_a_failed_request_fails_every_alert_in_it_for_a_retry() -> None:
    recorder = Recorder(lambda alerts: 503)
    results = send_together(recorder, ["a", "b"])
    assert all(isinstance(r, RetryableDeliveryError) for r in results)
    assert recorder.requests == [["a", "b"]]


@pytest.mark.parametrize("count", [1, 65])
def test_requests_hold_at_most_64_alerts(count: int) -> None:
    recorder = Recorder()
    assert send_together(recorder, [f"k{i}" for i in range(count)]) == [None] * count
    assert [len(r) for r in recorder.requests] == ([1] if count == 1 else [64, 1])

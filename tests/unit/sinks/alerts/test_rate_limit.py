"""PagerDuty's rate limit per routing key: the sliding window, the hold after a 429, the router.

The router's HTTP calls go to ``httpx.MockTransport`` handlers (test doubles).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr

from hoststream.errors import RateLimitedDeliveryError
from hoststream.sinks.alerts.pagerduty import EVENTS_PER_MINUTE, PagerDutyRouter
from hoststream.sinks.alerts.rate_limit import RateLimit
from tests.support.alerts import PD_KEY, firing
from tests.support.doubles.clock import FakeClock


def test_sends_beyond_the_limit_wait_for_the_oldest_to_leave_the_window() -> None:
    clock = FakeClock(0.0)
    limit = RateLimit(3, 60.0, clock=clock)
    for at in (0.0, 10.0, 20.0):
        clock.now = at
        assert limit.delay() == 0.0
        limit.take()
    clock.now = 30.0
    assert limit.delay() == 30.0  # the send at 0 leaves the window at 60
    clock.now = 60.0
    assert limit.delay() == 0.0
    limit.take()
    assert limit.delay() == 10.0  # now the send at 10 is the oldest


def test_a_429_holds_every_send_with_a_backoff_doubling_until_one_is_accepted() -> None:
    clock = FakeClock(0.0)
    limit = RateLimit(100, 60.0, hold_initial_s=1.0, hold_max_s=8.0, clock=clock, rand=lambda: 1.0)
    assert limit.throttled(None) == 1.0
    assert limit.delay() == 1.0
    assert limit.throttled(None) == 2.0
    assert limit.throttled(None) == 4.0
    assert limit.delay() == 4.0
    limit.accepted()
    assert limit.throttled(None) == 1.0
    assert limit.throttled(7.5) == 7.5  # the receiver's Retry-After wins


def test_a_limit_needs_room_for_one_send() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        RateLimit(0, 60.0)


def test_pagerdutys_documented_limit_is_the_default() -> None:
    router = PagerDutyRouter(SecretStr(PD_KEY), "http://pd.invalid/v2/enqueue")
    assert (router.rate_limit.limit, router.rate_limit.window_s) == (EVENTS_PER_MINUTE, 60.0)
    assert EVENTS_PER_MINUTE == 120


class Rig:
    """A router over a MockTransport answering ``statuses`` in turn, on a fake clock."""

    def __init__(self, statuses: list[int], limit: RateLimit, clock: FakeClock) -> None:
        self.statuses = list(statuses)
        self.times: list[float] = []
        self.clock = clock
        self.slept: list[float] = []

        def answer(request: httpx.Request) -> httpx.Response:
            self.times.append(clock.now)
            return httpx.Response(self.statuses.pop(0) if self.statuses else 202, json={})

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)
            clock.now += seconds

        self.router = PagerDutyRouter(
            SecretStr(PD_KEY),
            "http://pd.invalid/v2/enqueue",
            client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
            rate_limit=limit,
            max_wait_s=10.0,
            sleep=sleep,
        )

    def send(self, key: str) -> None:
        asyncio.run(self.router.send(firing(key)))


def test_the_router_waits_for_a_free_slot_within_its_longest_wait() -> None:
    clock = FakeClock(0.0)
    rig = Rig([], RateLimit(2, 5.0, clock=clock), clock)
    for key in ("a", "b", "c"):
        rig.send(key)
    assert rig.times == [0.0, 0.0, 5.0]
    assert rig.slept == [5.0]


def test_a_longer_wait_is_handed_back_to_the_sink_without_a_request() -> None:
    clock = FakeClock(0.0)
    rig = Rig([], RateLimit(1, 60.0, clock=clock), clock)
    rig.send("a")
    with pytest.raises(RateLimitedDeliveryError, match="limit of 1 events per 60 s") as raised:
        rig.send("b")
    assert raised.value.retry_after == 60.0
    assert rig.times == [0.0]  # PagerDuty was not asked


def test_a_429_holds_the_routing_key_for_the_next_alerts_too() -> None:
    clock = FakeClock(0.0)
    limit = RateLimit(100, 60.0, hold_initial_s=2.0, clock=clock, rand=lambda: 1.0)
    rig = Rig([429], limit, clock)
    with pytest.raises(RateLimitedDeliveryError) as raised:
        rig.send("a")
    assert raised.value.retry_after == 2.0
    rig.send("b")  # another alert of the same key waits out the hold
    assert rig.times == [0.0, 2.0]

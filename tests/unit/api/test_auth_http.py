"""Through the app: no token, signed or not, gets a 500; failed authentications are throttled.

The app runs in-process (FastAPI's TestClient) with a never-opened database pool
and a VictoriaMetrics test double; only authentication is under test here.
"""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from hoststream.api.app import create_app
from hoststream.api.auth import AUDIENCE, ISSUER, Authenticator
from hoststream.api.context import ApiContext
from hoststream.api.ratelimit import AuthFailureThrottle, RateLimiter
from hoststream.config import Settings

SECRET = SecretStr("a" * 48)


async def kafka_ok() -> None:
    return None


def client(failures_per_minute: int) -> TestClient:
    settings = Settings(api_secret=SECRET)
    vm = httpx.AsyncClient(
        base_url="http://vm.test",
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"data": []})),
    )
    context = ApiContext(
        settings=settings,
        authenticator=Authenticator(SECRET, [], default_rate_limit=10_000),
        limiter=RateLimiter(),
        pool=AsyncConnectionPool("postgresql://127.0.0.1:1/x", open=False),
        vm=vm,
        kafka_check=kafka_ok,
        auth_throttle=AuthFailureThrottle(failures_per_minute),
    )
    return TestClient(
        create_app(settings, context, registry=CollectorRegistry()), raise_server_exceptions=False
    )


def token(**claims) -> str:
    now = int(time.time())
    base = {"sub": "t", "scope": "read:metrics", "iat": now, "exp": now + 60}
    base.update({"iss": ISSUER, "aud": AUDIENCE})
    return jwt.encode({**base, **claims}, SECRET.get_secret_value(), algorithm="HS256")


def sample(api: TestClient, name: str, **labels: str) -> float:
    """A sample of the registry the app's /metrics serves."""
    registry: CollectorRegistry = api.app.state.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    "claims",
    [
        {"rate_limit_per_minute": "not a number"},
        {"rate_limit_per_minute": {"a": 1}},
        {"scope": 7},
        {"sub": ["a"]},
    ],
)
def test_a_signed_token_with_malformed_claims_is_401(claims) -> None:
    with client(1000) as api:
        response = api.get("/api/v1/hosts", headers={"Authorization": f"Bearer {token(**claims)}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_failed_authentications_past_the_rate_get_429_and_are_counted() -> None:
    with client(5) as api:
        codes = [
            api.get("/api/v1/hosts", headers={"Authorization": f"Bearer hsk_{n}_guess"}).status_code
            for n in range(20)
        ]
        assert codes == [401] * 5 + [429] * 15
        # The address is refused before its token is looked at: a valid one waits too.
        refused = api.get("/api/v1/hosts", headers={"Authorization": f"Bearer {token()}"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        metrics = api.get("/metrics").text
        assert sample(api, "hoststream_api_auth_failures_total", reason="invalid") == 5
        assert sample(api, "hoststream_api_auth_throttled_total") == 16
    assert "hoststream_api_auth_throttled_total 16.0" in metrics


def test_a_missing_token_counts_as_a_failure() -> None:
    with client(2) as api:
        codes = [api.get("/api/v1/hosts").status_code for _ in range(3)]
        assert sample(api, "hoststream_api_auth_failures_total", reason="missing") == 2
    assert codes == [401, 401, 429]

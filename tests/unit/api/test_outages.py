"""A dependency that is down or misbehaves makes the API answer 503/502, never 500.

VictoriaMetrics is either a closed local port (a real refused connection) or
an ``httpx.MockTransport`` test double that answers what a failing server would.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from hoststream.api.app import create_app
from hoststream.api.auth import Authenticator, issue_jwt
from hoststream.api.context import ApiContext
from hoststream.api.ratelimit import RateLimiter
from hoststream.api.store import encode_cursor
from hoststream.config import Settings

SECRET = SecretStr("u" * 48)
ENDPOINTS = [
    ("/api/v1/hosts", {}),
    ("/api/v1/metrics/cpu/latest", {"host": "h1"}),
    ("/api/v1/query", {"query": "up"}),
    ("/api/v1/query_range", {"query": "up", "start": "1700000000"}),
]


def closed_port() -> int:
    # Bound and closed again: nothing listens there, so connecting is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def kafka_ok() -> None:
    return None


@pytest.fixture
def client_for() -> Iterator[Callable[[httpx.AsyncClient], TestClient]]:
    clients: list[TestClient] = []

    def make(vm: httpx.AsyncClient) -> TestClient:
        settings = Settings(api_secret=SECRET)
        context = ApiContext(
            settings=settings,
            authenticator=Authenticator(SECRET, [], default_rate_limit=10_000),
            limiter=RateLimiter(),
            # Never opened: every use fails as a database that is down does (PoolClosed).
            pool=AsyncConnectionPool(f"postgresql://127.0.0.1:{closed_port()}/x", open=False),
            vm=vm,
            kafka_check=kafka_ok,
        )
        client = TestClient(create_app(settings, context), raise_server_exceptions=False)
        client.__enter__()
        client.headers["Authorization"] = "Bearer " + issue_jwt(
            SECRET, "t", ["read:metrics", "read:alerts"], 60
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def mock_vm(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    """A test double of VictoriaMetrics: ``handler`` answers every request."""
    return httpx.AsyncClient(base_url="http://vm.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("path", "params"), ENDPOINTS)
def test_victoriametrics_refusing_connections_is_503(client_for, path, params) -> None:
    client = client_for(httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}"))
    response = client.get(path, params=params)
    assert response.status_code == 503, response.text
    assert "VictoriaMetrics is unavailable (ConnectError)" in response.json()["detail"]


@pytest.mark.parametrize(("path", "params"), ENDPOINTS)
def test_victoriametrics_timing_out_is_503(client_for, path, params) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    response = client_for(mock_vm(timeout)).get(path, params=params)
    assert response.status_code == 503
    assert "did not answer in time" in response.json()["detail"]


@pytest.mark.parametrize(("path", "params"), ENDPOINTS)
def test_victoriametrics_failing_is_503_without_its_internals(client_for, path, params) -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="panic: /var/lib/vm/secret-path corrupted")

    response = client_for(mock_vm(failing)).get(path, params=params)
    assert response.status_code == 503
    assert "secret-path" not in response.text


@pytest.mark.parametrize(("path", "params"), ENDPOINTS[:2])
def test_an_answer_that_is_not_the_query_api_is_502(client_for, path, params) -> None:
    def proxy_page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>login</html>")

    response = client_for(mock_vm(proxy_page)).get(path, params=params)
    assert response.status_code == 502
    assert response.json() == {"detail": "VictoriaMetrics gave an unexpected answer"}


def test_latest_reports_each_samples_own_time(client_for) -> None:
    series = {"__name__": "node_load1", "instance": "h1", "job": "hoststream"}

    evaluated_at: set[str] = set()

    def vm(request: httpx.Request) -> httpx.Response:
        # Evaluated at 1000.5; the sample itself is from 990.25.
        evaluated_at.add(request.url.params["time"])
        value = "990.25" if request.url.params["query"].startswith("timestamp(") else "0.5"
        return httpx.Response(
            200,
            json={
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": series, "value": [1000.5, value]}],
                },
            },
        )

    response = client_for(mock_vm(vm)).get("/api/v1/metrics/system/latest", params={"host": "h1"})
    assert response.status_code == 200
    assert response.json()["samples"] == [
        {"name": "node_load1", "labels": {}, "value": 0.5, "timestamp": 990_250}
    ]
    assert len(evaluated_at) == 1  # value and time describe the same instant


def test_health_names_victoriametrics_when_it_is_down(client_for) -> None:
    client = client_for(httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}"))
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["victoriametrics"].startswith("failed: ConnectError")
    assert checks["kafka"] == "ok"


@pytest.mark.parametrize(
    ("path", "params"),
    [("/api/v1/aggregates", {"host": "h1", "metric": "node_load1"}), ("/api/v1/alerts", {})],
)
def test_the_database_being_down_is_503(client_for, path, params) -> None:
    response = client_for(mock_vm(lambda r: httpx.Response(204))).get(path, params=params)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("the database did not answer")


@pytest.mark.parametrize(
    "position",
    [
        ["a", "b"],  # not an instant
        [{}, "b"],
        [10**20, "b"],  # past year 9999
        [True, "b"],
        [1, 2],  # the key is not a string
        [1, "a\x00b"],  # PostgreSQL text cannot hold NUL
    ],
)
def test_forged_cursors_are_422_before_any_query(client_for, position) -> None:
    cursor = encode_cursor(position)
    client = client_for(mock_vm(lambda r: httpx.Response(204)))
    for path, params in (
        ("/api/v1/aggregates", {"host": "h1", "metric": "node_load1"}),
        ("/api/v1/alerts", {}),
    ):
        response = client.get(path, params={**params, "cursor": cursor})
        assert response.status_code == 422, (path, response.text)


def test_instants_past_year_9999_are_422(client_for) -> None:
    client = client_for(mock_vm(lambda r: httpx.Response(204)))
    response = client.get(
        "/api/v1/aggregates",
        params={"host": "h1", "metric": "node_load1", "end": 10**15},
    )
    assert response.status_code == 422

"""The aggregate stream's bounds: slots in all and per token, and release however a stream ends."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr
from starlette.requests import ClientDisconnect

from hoststream.api.app import create_app
from hoststream.api.auth import Authenticator, issue_jwt
from hoststream.api.context import ApiContext
from hoststream.api.ratelimit import RateLimiter
from hoststream.api.routes import stream
from hoststream.api.routes.stream import MAX_CLIENTS, MAX_CLIENTS_PER_SUBJECT, StreamSlots
from hoststream.config import Settings

SECRET = SecretStr("v" * 48)
PATH = "/api/v1/stream/aggregates"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def kafka_ok() -> None:
    return None


@pytest.fixture(autouse=True)
def fresh_slots() -> Iterator[StreamSlots]:
    slots = StreamSlots(MAX_CLIENTS, MAX_CLIENTS_PER_SUBJECT)
    saved, stream._SLOTS = stream._SLOTS, slots
    yield slots
    stream._SLOTS = saved


def app_and_token(subject: str = "viewer"):
    # Nothing listens on the bootstrap port: a real subscription cannot succeed.
    settings = Settings(api_secret=SECRET, kafka_bootstrap=f"127.0.0.1:{closed_port()}")
    context = ApiContext(
        settings=settings,
        authenticator=Authenticator(SECRET, [], default_rate_limit=10_000),
        limiter=RateLimiter(),
        pool=AsyncConnectionPool("postgresql://127.0.0.1:1/x", open=False),
        vm=httpx.AsyncClient(base_url="http://vm.test"),
        kafka_check=kafka_ok,
    )
    app = create_app(settings, context)
    app.state.context = context
    return app, issue_jwt(SECRET, subject, ["read:metrics"], 60)


def test_slots_bound_the_total_and_each_subjects_share() -> None:
    slots = StreamSlots(total=3, per_subject=2)
    slots.take("a")
    slots.take("a")
    with pytest.raises(HTTPException) as own_share:
        slots.take("a")
    assert own_share.value.status_code == 429
    slots.take("b")
    with pytest.raises(HTTPException) as full:
        slots.take("c")
    assert full.value.status_code == 503
    slots.release("a")
    slots.take("c")
    assert slots.in_use == {"a": 1, "b": 1, "c": 1}


def test_a_full_server_answers_503_and_a_greedy_token_429(fresh_slots) -> None:
    app, token = app_and_token("greedy")
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        fresh_slots.in_use = {"jwt:greedy": MAX_CLIENTS_PER_SUBJECT}
        response = client.get(PATH, headers=headers)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "30"
        fresh_slots.in_use = {f"s{i}": 1 for i in range(MAX_CLIENTS)}
        response = client.get(PATH, headers=headers)
        assert response.status_code == 503
        assert "too many stream clients" in response.json()["detail"]


def test_kafka_being_down_is_503_and_frees_the_slot(fresh_slots) -> None:
    app, token = app_and_token()
    with TestClient(app) as client:
        response = client.get(PATH, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.json() == {"detail": "Kafka did not answer; try again later"}
    assert fresh_slots.in_use == {}


# uvicorn's HTTP scopes say no spec version (2.0: Starlette listens for the
# disconnect); from 2.4 a server's send raises OSError once the client is gone.
@pytest.mark.parametrize("spec_version", ["2.0", "2.4"])
def test_a_client_that_disconnects_frees_its_slot(
    fresh_slots, monkeypatch: pytest.MonkeyPatch, spec_version: str
) -> None:
    # Test doubles for the Kafka metadata calls: the stream subscribes to nothing.
    monkeypatch.setattr(stream, "_aggregate_topics", lambda consumer, prefix: {})
    monkeypatch.setattr(stream, "_assign_at_end", lambda consumer, topics: None)
    # The next write after the disconnect is a heartbeat; make it come soon.
    monkeypatch.setattr(stream, "HEARTBEAT_S", 0.2)
    app, token = app_and_token()
    chunks: list[bytes] = []
    in_use_while_streaming: list[dict[str, int]] = []

    async def drive() -> None:
        first_body = asyncio.Event()
        requested = False

        async def receive() -> dict[str, object]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await first_body.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            if first_body.is_set() and spec_version == "2.4":
                raise OSError("the client went away")
            if message["type"] == "http.response.body" and message.get("body"):
                chunks.append(message["body"])  # type: ignore[arg-type]
                in_use_while_streaming.append(dict(fresh_slots.in_use))
                first_body.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": spec_version},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        # As a server does, take a failed write to a gone client as the end of the request.
        with contextlib.suppress(OSError, ClientDisconnect):
            await asyncio.wait_for(app(scope, receive, send), 10)

    asyncio.run(drive())
    assert chunks[0] == b": subscribed\n\n"
    assert in_use_while_streaming[0] == {"jwt:viewer": 1}
    assert fresh_slots.in_use == {}

"""Auth, scopes, rate limits, CORS, bounded requests and error bodies."""

from __future__ import annotations

import httpx


def test_health_and_metrics_need_no_auth(api_server) -> None:
    health = api_server.get("/api/v1/health", token=None)
    assert health.status_code == 200
    assert health.json()["checks"] == {"postgres": "ok", "victoriametrics": "ok", "kafka": "ok"}
    metrics = api_server.get("/metrics", token=None)
    assert metrics.status_code == 200
    assert "hoststream_api_requests_total" in metrics.text


def test_missing_or_bad_token_is_401(api_server) -> None:
    assert api_server.get("/api/v1/hosts", token=None).status_code == 401
    response = api_server.get("/api/v1/hosts", token="not-a-token")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    expired = api_server.token(ttl_s=-5)
    assert api_server.get("/api/v1/hosts", token=expired).status_code == 401


def test_missing_scope_is_403(api_server) -> None:
    only_alerts = api_server.token(["read:alerts"])
    response = api_server.get("/api/v1/hosts", token=only_alerts)
    assert response.status_code == 403
    assert "read:metrics" in response.json()["detail"]


def test_rate_limit_answers_429_with_retry_after(api_server) -> None:
    # This key allows 3 requests a minute.
    codes = [
        api_server.get("/api/v1/hosts", token=api_server.limited_key).status_code for _ in range(5)
    ]
    assert codes[:3] == [200, 200, 200]
    assert codes[3] == 429
    limited = api_server.get("/api/v1/hosts", token=api_server.limited_key)
    assert int(limited.headers["retry-after"]) >= 1


def test_cors_allows_only_configured_origins(api_server) -> None:
    preflight = {"Access-Control-Request-Method": "GET"}
    allowed = httpx.options(
        f"{api_server.url}/api/v1/hosts",
        headers={"Origin": "https://dash.example", **preflight},
    )
    assert allowed.headers.get("access-control-allow-origin") == "https://dash.example"
    denied = httpx.options(
        f"{api_server.url}/api/v1/hosts", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in denied.headers


def test_large_bodies_are_refused(api_server) -> None:
    response = httpx.request(
        "GET",
        f"{api_server.url}/api/v1/hosts",
        content=b"x" * 100_000,
        headers={"Authorization": f"Bearer {api_server.token()}"},
    )
    assert response.status_code == 413


def test_invalid_parameters_are_422_without_internals(api_server) -> None:
    response = api_server.get("/api/v1/metrics/cpu/latest", params={"host": 'bad host"}'})
    assert response.status_code == 422
    assert "Traceback" not in response.text


def test_openapi_is_served(api_server) -> None:
    spec = api_server.get("/openapi.json", token=None).json()
    for path in (
        "/api/v1/health",
        "/api/v1/hosts",
        "/api/v1/metrics/{family}/latest",
        "/api/v1/query",
        "/api/v1/stream/aggregates",
    ):
        assert path in spec["paths"]

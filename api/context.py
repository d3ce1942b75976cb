"""What every request handler shares: settings, auth, rate limits and clients."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from hoststream.api.auth import Authenticator, InvalidTokenError, Principal
from hoststream.api.metrics import ApiMetrics
from hoststream.api.ratelimit import AuthFailureThrottle, RateLimiter
from hoststream.config import Settings

__all__ = ["ApiContext", "api_metrics", "client_address", "context", "require"]


@dataclass
class ApiContext:
    """The API's long-lived objects, opened by the app's lifespan."""

    settings: Settings
    authenticator: Authenticator
    limiter: RateLimiter
    pool: AsyncConnectionPool
    vm: httpx.AsyncClient
    kafka_check: Callable[[], Awaitable[None]]
    auth_throttle: AuthFailureThrottle = field(default_factory=AuthFailureThrottle)


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


def api_metrics(request: Request) -> ApiMetrics:
    """The metrics of the app serving ``request`` (see :func:`api.app.create_app`)."""
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


_bearer = HTTPBearer(auto_error=False)


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller, checks ``scope`` and the rate limit."""

    async def dependency(
        request: Request,
        ctx: Annotated[ApiContext, Depends(context)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        metrics = api_metrics(request)
        address = client_address(request)
        blocked = ctx.auth_throttle.wait_for(address)
        if blocked > 0:
            metrics.auth_throttled.inc()
            raise HTTPException(
                429,
                "too many failed authentications from this address",
                headers={"Retry-After": RateLimiter.retry_after(blocked)},
            )
        if credentials is None or credentials.scheme.lower() != "bearer":
            ctx.auth_throttle.failed(address)
            metrics.auth_failures.labels("missing").inc()
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        try:
            principal = ctx.authenticator.authenticate(credentials.credentials)
        except InvalidTokenError as exc:
            ctx.auth_throttle.failed(address)
            metrics.auth_failures.labels("invalid").inc()
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
        if scope not in principal.scopes:
            raise HTTPException(403, f"this token lacks the scope {scope}")
        wait = ctx.limiter.acquire(principal.subject, principal.rate_limit_per_minute)
        if wait > 0:
            raise HTTPException(
                429, "rate limit exceeded", headers={"Retry-After": ctx.limiter.retry_after(wait)}
            )
        return principal

    return dependency


def client_address(request: Request) -> str:
    """The address the request came from, as the server saw it (no proxy headers trusted)."""
    return request.client.host if request.client is not None else "unknown"


async def run_blocking(func: Callable[[], None]) -> None:
    await asyncio.get_running_loop().run_in_executor(None, func)

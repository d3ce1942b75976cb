"""What every request handler shares: settings, auth, rate limits and clients."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from hoststream.api.auth import Authenticator, InvalidTokenError, Principal
from hoststream.api.ratelimit import RateLimiter
from hoststream.config import Settings

__all__ = ["ApiContext", "context", "require"]


@dataclass
class ApiContext:
    """The API's long-lived objects, opened by the app's lifespan."""

    settings: Settings
    authenticator: Authenticator
    limiter: RateLimiter
    pool: AsyncConnectionPool
    vm: httpx.AsyncClient
    kafka_check: Callable[[], Awaitable[None]]


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


_bearer = HTTPBearer(auto_error=False)


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller, checks ``scope`` and the rate limit."""

    async def dependency(
        ctx: Annotated[ApiContext, Depends(context)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        try:
            principal = ctx.authenticator.authenticate(credentials.credentials)
        except InvalidTokenError as exc:
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


async def run_blocking(func: Callable[[], None]) -> None:
    await asyncio.get_running_loop().run_in_executor(None, func)

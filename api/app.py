"""The FastAPI application: routes, security middleware and the clients' lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from hoststream import __version__
from hoststream.api.auth import Authenticator
from hoststream.api.context import ApiContext, api_metrics
from hoststream.api.metrics import ApiMetrics
from hoststream.api.ratelimit import AuthFailureThrottle, RateLimiter
from hoststream.api.routes import health, hosts, query, stored, stream
from hoststream.api.tracing import instrument
from hoststream.config import Settings
from hoststream.kafka import admin_client
from hoststream.tls import client_ssl_context, vm_auth

__all__ = ["MAX_BODY_BYTES", "create_app"]

log = logging.getLogger(__name__)

#: The API only reads; a request body larger than this is refused outright.
MAX_BODY_BYTES = 16 * 1024


def _kafka_check(settings: Settings) -> Callable[[], Awaitable[None]]:
    admin = admin_client(settings)

    async def check() -> None:
        metadata = await asyncio.to_thread(admin.list_topics, timeout=2.5)
        if not metadata.brokers:
            raise RuntimeError("no broker in the cluster metadata")

    return check


def create_app(
    settings: Settings,
    context: ApiContext | None = None,
    *,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The API for ``settings``.

    Args:
        settings: hoststream's settings.
        context: replaces the clients the lifespan would open (tests).
        registry: where the API's metrics are registered and what ``/metrics``
            serves (the component runtime's); default: a registry of the app's own.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if context is not None:
            app.state.context = context
            yield
            return
        pool = AsyncConnectionPool(
            settings.sql_dsn.get_secret_value(),
            min_size=1,
            max_size=10,
            open=False,
            timeout=5.0,
            kwargs={"connect_timeout": 3},
        )
        # The pool opens in the background: the API starts (and reports health)
        # even while PostgreSQL is down.
        await pool.open(wait=False)
        vm = httpx.AsyncClient(
            base_url=settings.vm_url,
            timeout=10.0,
            auth=vm_auth(settings),
            verify=client_ssl_context(settings),
        )
        app.state.context = ApiContext(
            settings=settings,
            authenticator=Authenticator.from_settings(settings),
            limiter=RateLimiter(),
            pool=pool,
            vm=vm,
            kafka_check=_kafka_check(settings),
            auth_throttle=AuthFailureThrottle(settings.api_auth_failures_per_minute),
        )
        try:
            yield
        finally:
            await vm.aclose()
            await pool.close()

    app = FastAPI(
        title="hoststream API",
        version=__version__,
        summary="Host metrics aggregates, alerts and live streams from the hoststream pipeline.",
        lifespan=lifespan,
    )
    app.state.metrics = ApiMetrics(registry if registry is not None else CollectorRegistry())
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization"],
            max_age=600,
        )

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": "request body too large"}, status_code=413)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            # Never a stack trace in a response; the log has it.
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = JSONResponse({"detail": "internal error"}, status_code=500)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics = api_metrics(request)
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.include_router(health.router)
    app.include_router(hosts.router)
    app.include_router(query.router)
    app.include_router(stored.router)
    app.include_router(stream.router)
    # Wraps the whole middleware stack, so the guard's error lines carry the request's span.
    instrument(app)
    return app

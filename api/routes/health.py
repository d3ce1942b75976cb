"""Liveness of the API's dependencies, and the API's own metrics. No auth."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hoststream.api.context import ApiContext, api_metrics, context
from hoststream.api.models import Health

__all__ = ["router"]

router = APIRouter()


async def _check(name: str, probe: asyncio.Future[object] | object) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, timeout=3.0)  # type: ignore[arg-type]
    except Exception as exc:  # any failure means the dependency is not usable
        return name, f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    return name, "ok"


async def _postgres(ctx: ApiContext) -> None:
    async with ctx.pool.connection(timeout=3.0) as conn:
        await conn.execute("SELECT 1")


async def _victoriametrics(ctx: ApiContext) -> None:
    response = await ctx.vm.get("/health")
    response.raise_for_status()


@router.get("/api/v1/health", response_model=Health, tags=["health"])
async def health(ctx: Annotated[ApiContext, Depends(context)], response: Response) -> Health:
    """200 when PostgreSQL, VictoriaMetrics and Kafka answer; 503 naming the ones that do not."""
    results = await asyncio.gather(
        _check("postgres", _postgres(ctx)),
        _check("victoriametrics", _victoriametrics(ctx)),
        _check("kafka", ctx.kafka_check()),
    )
    checks = dict(results)
    healthy = all(v == "ok" for v in checks.values())
    if not healthy:
        response.status_code = 503
    return Health(status="ok" if healthy else "degraded", checks=checks)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(api_metrics(request).registry), media_type=CONTENT_TYPE_LATEST)

"""Read-only PromQL pass-through to VictoriaMetrics, for dashboards and scripts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from hoststream.api.auth import Principal
from hoststream.api.context import ApiContext, context, require
from hoststream.api.vm import vm_get

__all__ = ["router"]

router = APIRouter(tags=["promql"])

QueryText = Annotated[str, Query(min_length=1, max_length=4096)]
TimeParam = Annotated[str | None, Query(max_length=40, pattern=r"^[0-9A-Za-z.:+-]+$")]


async def _forward(ctx: ApiContext, path: str, params: dict[str, Any]) -> JSONResponse:
    response = await vm_get(ctx.vm, path, {k: v for k, v in params.items() if v is not None})
    if response.status_code >= 500:
        # Its 5xx bodies may name internals (paths, flags); the caller learns only that it failed.
        return JSONResponse(
            {"status": "error", "error": "VictoriaMetrics failed to answer the query"},
            status_code=503,
        )
    # VictoriaMetrics' own 4xx bodies say what is wrong with the query; pass them on.
    try:
        body = response.json()
    except ValueError:
        return JSONResponse(
            {"status": "error", "error": "VictoriaMetrics returned no JSON"}, status_code=502
        )
    return JSONResponse(body, status_code=response.status_code)


@router.get("/api/v1/query")
async def instant_query(
    ctx: Annotated[ApiContext, Depends(context)],
    _: Annotated[Principal, Depends(require("read:metrics"))],
    query: QueryText,
    time: TimeParam = None,
) -> JSONResponse:
    """A PromQL/MetricsQL instant query, answered as Prometheus' HTTP API does."""
    return await _forward(ctx, "/api/v1/query", {"query": query, "time": time})


@router.get("/api/v1/query_range")
async def range_query(
    ctx: Annotated[ApiContext, Depends(context)],
    _: Annotated[Principal, Depends(require("read:metrics"))],
    query: QueryText,
    start: Annotated[str, Query(max_length=40, pattern=r"^[0-9A-Za-z.:+-]+$")],
    end: TimeParam = None,
    step: Annotated[str | None, Query(max_length=12, pattern=r"^[0-9]+(\.[0-9]+)?[smhd]?$")] = None,
) -> JSONResponse:
    """A PromQL/MetricsQL range query, answered as Prometheus' HTTP API does."""
    return await _forward(
        ctx, "/api/v1/query_range", {"query": query, "start": start, "end": end, "step": step}
    )

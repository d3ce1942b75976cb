"""Reading VictoriaMetrics: every route goes through here, so an outage is always a 503.

A request VictoriaMetrics cannot take (refused connection, timeout, a 5xx)
says so as 503 with what happened; an answer that is not the Prometheus API's
JSON is a 502. Neither carries VictoriaMetrics' internals to the caller.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import HTTPException

__all__ = ["vm_get", "vm_instant"]

log = logging.getLogger(__name__)


async def vm_get(vm: httpx.AsyncClient, path: str, params: dict[str, str]) -> httpx.Response:
    """``GET path`` on VictoriaMetrics; HTTPException 503 if it cannot be reached."""
    try:
        return await vm.get(path, params=params)
    except httpx.TimeoutException as exc:
        log.warning("VictoriaMetrics timed out on %s: %r", path, exc)
        raise HTTPException(503, "VictoriaMetrics did not answer in time; try again later") from exc
    except httpx.HTTPError as exc:
        # Connection refused, reset or DNS failure: the database is down or unreachable.
        log.warning("VictoriaMetrics unreachable on %s: %r", path, exc)
        raise HTTPException(
            503, f"VictoriaMetrics is unavailable ({type(exc).__name__}); try again later"
        ) from exc


async def vm_instant(
    vm: httpx.AsyncClient, query: str, at: float | None = None
) -> list[dict[str, Any]]:
    """The result vector of an instant query of the API's own making, evaluated at ``at``."""
    params = {"query": query}
    if at is not None:
        params["time"] = f"{at:.3f}"
    response = await vm_get(vm, "/api/v1/query", params)
    if response.status_code >= 500:
        log.warning("VictoriaMetrics answered %d: %s", response.status_code, response.text[:500])
        raise HTTPException(503, "VictoriaMetrics failed to answer the query; try again later")
    try:
        body = response.json()
        # The queries are ours, so a 4xx means a bug here, not the caller's; the log says which.
        if response.status_code != 200 or body.get("status") != "success":
            raise ValueError(f"HTTP {response.status_code}: {str(body)[:500]}")
        result: list[dict[str, Any]] = body["data"]["result"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.error("unexpected answer from VictoriaMetrics to %r: %s", query, exc)
        raise HTTPException(502, "VictoriaMetrics gave an unexpected answer") from exc
    return result

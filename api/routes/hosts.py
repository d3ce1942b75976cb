"""Hosts and their latest raw values, read from VictoriaMetrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from api.auth import Principal
from api.context import ApiContext, context, require
from api.families import FAMILY_SELECTORS
from api.models import HostOut, LatestSample, LatestValues

__all__ = ["router", "vm_query"]

router = APIRouter(tags=["hosts"])

HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$"


async def vm_query(ctx: ApiContext, query: str) -> list[dict[str, Any]]:
    response = await ctx.vm.get("/api/v1/query", params={"query": query})
    if response.status_code != 200:
        raise HTTPException(502, "VictoriaMetrics did not answer the query")
    body = response.json()
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _quote(value: str) -> str:
    # Host ids are validated by HOST_PATTERN; escaping keeps PromQL injection out regardless.
    return value.replace("\\", "\\\\").replace('"', '\\"')


@router.get("/api/v1/hosts", response_model=list[HostOut])
async def hosts(
    ctx: Annotated[ApiContext, Depends(context)],
    _: Annotated[Principal, Depends(require("read:metrics"))],
    lookback: Annotated[str, Query(pattern=r"^[1-9][0-9]{0,3}[mhd]$")] = "1d",
) -> list[HostOut]:
    """Every host that sent samples within ``lookback``, with the time of its newest sample."""
    newest = f'tlast_over_time(node_boot_time_seconds{{job="hoststream"}}[{lookback}])'
    rows = await vm_query(ctx, f"max by (instance) ({newest})")
    found = [HostOut(host=r["metric"]["instance"], last_seen=float(r["value"][1])) for r in rows]
    return sorted(found, key=lambda h: h.host)


@router.get("/api/v1/metrics/{family}/latest", response_model=LatestValues)
async def latest(
    ctx: Annotated[ApiContext, Depends(context)],
    _: Annotated[Principal, Depends(require("read:metrics"))],
    family: str,
    host: Annotated[str, Query(pattern=HOST_PATTERN)],
) -> LatestValues:
    """The newest value of each of the host's series in ``family`` (within 5 minutes)."""
    selector = FAMILY_SELECTORS.get(family)
    if selector is None:
        raise HTTPException(404, f"unknown family {family!r}; known: {sorted(FAMILY_SELECTORS)}")
    rows = await vm_query(
        ctx, f'{{__name__=~"{selector}",job="hoststream",instance="{_quote(host)}"}}'
    )
    if not rows:
        raise HTTPException(404, f"no recent {family} samples for host {host!r}")
    samples = [
        LatestSample(
            name=r["metric"]["__name__"],
            labels={
                k: v for k, v in r["metric"].items() if k not in ("__name__", "instance", "job")
            },
            value=float(r["value"][1]),
            timestamp=float(r["value"][0]),
        )
        for r in rows
    ]
    samples.sort(key=lambda s: (s.name, sorted(s.labels.items())))
    return LatestValues(host=host, family=family, samples=samples)

"""Hosts and their latest raw values, read from VictoriaMetrics."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from hoststream.api.auth import Principal
from hoststream.api.context import ApiContext, context, require
from hoststream.api.families import FAMILY_SELECTORS
from hoststream.api.models import HostOut, LatestSample, LatestValues
from hoststream.api.vm import vm_instant

__all__ = ["HOST_PATTERN", "router"]

router = APIRouter(tags=["hosts"])

HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$"


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
    rows = await vm_instant(ctx.vm, f"max by (instance) ({newest})")
    found = [
        HostOut(host=r["metric"]["instance"], last_seen=_ms(r["value"][1]))
        for r in rows
        if "instance" in r["metric"]
    ]
    return sorted(found, key=lambda h: h.host)


def _ms(seconds: str | float) -> int:
    """VictoriaMetrics' Unix seconds (to the millisecond) as the API's UTC milliseconds."""
    return round(float(seconds) * 1000)


def _series_key(metric: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(metric.items()))


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
    series = f'{{__name__=~"{selector}",job="hoststream",instance="{_quote(host)}"}}'
    # An instant query answers with the evaluation time, not the sample's, so
    # timestamp() asks for the sample's. Both are evaluated at one instant so
    # that they describe the same raw sample.
    at = time.time()
    rows, stamps = await asyncio.gather(
        vm_instant(ctx.vm, series, at),
        vm_instant(ctx.vm, f"timestamp({series}) keep_metric_names", at),
    )
    sampled_at = {_series_key(r["metric"]): _ms(r["value"][1]) for r in stamps}
    if not rows:
        raise HTTPException(404, f"no recent {family} samples for host {host!r}")
    samples = [
        LatestSample(
            name=r["metric"]["__name__"],
            labels={
                k: v for k, v in r["metric"].items() if k not in ("__name__", "instance", "job")
            },
            value=float(r["value"][1]),
            # A series missing from the second answer (it vanished between the
            # two reads) falls back to the evaluation time, which is at most 5 minutes on.
            timestamp=sampled_at.get(_series_key(r["metric"]), _ms(r["value"][0])),
        )
        for r in rows
    ]
    samples.sort(key=lambda s: (s.name, sorted(s.labels.items())))
    return LatestValues(host=host, family=family, samples=samples)

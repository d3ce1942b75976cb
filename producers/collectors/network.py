"""``network``: per-interface traffic counters, as node_exporter's netdev collector."""

from __future__ import annotations

from hoststream.producers.collectors.base import NameFilter
from hoststream.producers.collectors.names import NETDEV_COUNTERS
from hoststream.producers.collectors.sources import NetworkSource
from hoststream.schemas.records import MetricKind, Sample

__all__ = ["NetworkCollector"]


class NetworkCollector:
    """``node_network_{receive,transmit}_{bytes,packets,errs,drop}_total{device}``.

    Args:
        source: anything with psutil's ``net_io_counters(pernic=True)``.
        device_exclude: regex of interfaces to leave out. The default, ``None``,
            keeps every interface, loopback included, as upstream node_exporter
            1.5 does (Debian's package defaults to ``^lo$``).
        device_include: regex of interfaces to keep, instead of ``device_exclude``.
    """

    family = "network"

    def __init__(
        self,
        source: NetworkSource,
        *,
        device_exclude: str | None = None,
        device_include: str | None = None,
    ) -> None:
        self._source = source
        self._devices = NameFilter(
            device_exclude,
            device_include,
            exclude_parameter="device_exclude",
            include_parameter="device_include",
        )

    def collect(self) -> list[Sample]:
        samples: list[Sample] = []
        counter = MetricKind.COUNTER
        for device, io in self._source.net_io_counters(pernic=True, nowrap=False).items():
            if not self._devices(device):
                continue
            labels = {"device": device}
            samples += [
                Sample(name, float(getattr(io, attr)), labels, counter)
                for name, attr in NETDEV_COUNTERS
            ]
        return samples

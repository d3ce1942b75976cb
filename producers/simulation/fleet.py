"""A fleet of simulated hosts: the producer's load source, with real collectors' series."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from hoststream.producers.simulation.model import HostModel
from hoststream.producers.simulation.profile import HostProfile, host_id, make_profile
from hoststream.schemas.records import FAMILIES, MetricEvent, Sample

__all__ = ["SimulatedFleet"]


class SimulatedFleet:
    """``hosts`` simulated hosts sending the same families, names, labels and kinds as real ones.

    Every value is a pure function of (``seed``, host index, timestamp): two
    fleets with the same seed give identical samples at the same timestamp,
    whatever was asked before, in any process. Hosts are built on first use,
    and each keeps a memo of its busy time since boot, so a fleet is not
    thread-safe: give each thread its own (or its own ``indices``).

    Args:
        hosts: how many hosts; their ids are :func:`~producers.simulation.profile.host_id`
            of the seed and index 0 .. hosts-1, e.g. ``sim-s1-h00042``.
        seed: picks the fleet: sizes, roles, habits and every random value.
        families: the families :meth:`events` sends, in this order.
        region: the region every event carries (None: none), as a real
            producer stamps ``HOSTSTREAM_REGION``.
    """

    def __init__(
        self,
        hosts: int,
        seed: int = 1,
        families: Iterable[str] = FAMILIES,
        region: str | None = None,
    ) -> None:
        if hosts < 0:
            raise ValueError(f"hosts must be 0 or more, not {hosts}")
        self.families: Sequence[str] = tuple(families)
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown metric family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
        self.seed = seed
        self.region = region
        self.host_ids: Sequence[str] = tuple(host_id(seed, i) for i in range(hosts))
        self._models: list[HostModel | None] = [None] * hosts
        self._host_labels: list[Mapping[str, str] | None] = [None] * hosts
        # Per host and family: the next event's seq, as a real producer numbers them.
        self._seq = [0] * (hosts * len(self.families))

    def __len__(self) -> int:
        return len(self.host_ids)

    def model(self, index: int) -> HostModel:
        """Host ``index``'s model (built and kept on first use)."""
        model = self._models[index]
        if model is None:
            model = self._models[index] = HostModel(make_profile(self.seed, index))
            self._host_labels[index] = model.profile.labels
        return model

    def profile(self, index: int) -> HostProfile:
        """What host ``index`` is: cores, memory, devices, role..."""
        return self.model(index).profile

    def samples(self, index: int, family: str, timestamp_ms: int) -> tuple[Sample, ...]:
        """Host ``index``'s samples of ``family`` at ``timestamp_ms``."""
        return tuple(self.model(index).samples(family, timestamp_ms / 1000.0))

    def events(
        self,
        timestamp_ms: int,
        interval_ms: int = 10_000,
        indices: Iterable[int] | None = None,
    ) -> Iterator[MetricEvent]:
        """One event per host and family at ``timestamp_ms``, host by host.

        Args:
            timestamp_ms: the collection instant, UTC milliseconds.
            interval_ms: the collection interval the events announce.
            indices: which hosts (default: all), e.g. a shard of the fleet.
        """
        t = timestamp_ms / 1000.0
        families = self.families
        per_host = len(families)
        seq = self._seq
        host_ids = self.host_ids
        region = self.region
        for index in range(len(host_ids)) if indices is None else indices:
            model = self.model(index)
            labels = self._host_labels[index]
            base = index * per_host
            for offset, family in enumerate(families):
                yield MetricEvent(
                    host_ids[index],
                    family,
                    timestamp_ms,
                    tuple(model.samples(family, t)),
                    interval_ms,
                    seq[base + offset],
                    labels if labels is not None else {},
                    region,
                )
                seq[base + offset] += 1

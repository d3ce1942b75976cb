"""A fleet of simulated hosts: the producer's load source, with real collectors' series."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from hoststream.producers.simulation.activity import LOAD_WINDOWS_S, jitter_of_many
from hoststream.producers.simulation.model import HostModel
from hoststream.producers.simulation.profile import HostProfile, host_id, make_profile
from hoststream.schemas.records import FAMILIES, EventValues, MetricEvent, Sample

__all__ = ["FleetValues", "SimulatedFleet"]


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
        # Per host and family: an event with the host's series, the template of its EventValues.
        self._templates: list[MetricEvent | None] = [None] * (hosts * len(self.families))
        # Per scale of the jitter, every host's key: a tick hashes the fleet's at once.
        self._jitter_keys: list[np.ndarray] | None = None
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
            keys = model.activity.jitter_keys
            if self._jitter_keys is None:
                self._jitter_keys = [np.zeros(len(self.host_ids), np.uint64) for _ in keys]
            for scale, key in zip(self._jitter_keys, keys, strict=True):
                scale[index] = key
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
        for values in self.event_values(timestamp_ms, interval_ms, indices):
            yield values.event()

    def event_values(
        self,
        timestamp_ms: int,
        interval_ms: int = 10_000,
        indices: Iterable[int] | None = None,
    ) -> Iterator[EventValues]:
        """:meth:`events` as templates and values: the producer's fast path.

        Each host and family has one template event (its series, host labels
        and region), kept for the fleet's life, and each tick only computes the
        values. Sequence numbers advance as with :meth:`events`; the two share them.
        """
        t = timestamp_ms / 1000.0
        families = self.families
        per_host = len(families)
        seq = self._seq
        templates = self._templates
        order = list(range(len(self.host_ids)) if indices is None else indices)
        models = [self.model(index) for index in order]
        for index, model, jitters in zip(order, models, self._jitters(order, t), strict=True):
            model.at(t, jitters)
            base = index * per_host
            for offset, family in enumerate(families):
                template = templates[base + offset]
                if template is None or template.interval_ms != interval_ms:
                    template = templates[base + offset] = self._template(
                        index, model, family, interval_ms
                    )
                yield EventValues(
                    template, timestamp_ms, seq[base + offset], model.values(family, t)
                )
                seq[base + offset] += 1

    def _jitters(self, order: list[int], t: float) -> list[tuple[float, ...]]:
        """Per host of ``order``: the jitter at ``t`` and ``t`` minus each load window."""
        if not order or self._jitter_keys is None:
            return [()] * len(order)
        at = np.asarray(order, dtype=np.intp)
        keys = tuple(scale[at] for scale in self._jitter_keys)
        columns = [
            jitter_of_many(keys, when).tolist()
            for when in (t, *(t - window for window in LOAD_WINDOWS_S))
        ]
        return list(zip(*columns, strict=True))

    def _template(self, index: int, model: HostModel, family: str, interval_ms: int) -> MetricEvent:
        labels = self._host_labels[index]
        return MetricEvent(
            self.host_ids[index],
            family,
            0,
            tuple(Sample(name, 0.0, labels_, kind) for name, labels_, kind in model.series(family)),
            interval_ms,
            0,
            labels if labels is not None else {},
            self.region,
        )


class FleetValues:
    """A simulated fleet, or some of its hosts, as the producer's event source.

    It gives :class:`EventValues` (a template and the tick's values per host
    and family), which the publisher writes by learned layout.

    Args:
        fleet: the fleet.
        indices: which of its hosts (default: all), e.g. one process's share.
    """

    def __init__(self, fleet: SimulatedFleet, indices: Sequence[int] | None = None) -> None:
        self.fleet = fleet
        self.indices = indices

    @property
    def families(self) -> Sequence[str]:
        return self.fleet.families

    def events(self, timestamp_ms: int, interval_ms: int) -> Iterator[EventValues]:
        return self.fleet.event_values(timestamp_ms, interval_ms, self.indices)

"""A fleet of simulated hosts: the producer's load source, with real collectors' series."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from hoststream.producers.simulation.activity import LOAD_WINDOWS_S, jitter_of_many
from hoststream.producers.simulation.columns import BatchColumns
from hoststream.producers.simulation.model import HostModel
from hoststream.producers.simulation.profile import HostProfile, host_id, make_profile
from hoststream.schemas.records import FAMILIES, EventBatch, EventValues, MetricEvent, Sample

__all__ = ["FleetBatches", "FleetValues", "SimulatedFleet"]


class _BatchRows:
    """What a batch of the same hosts reuses every tick: templates, sequence slots, columns."""

    __slots__ = ("columns", "slots", "stamp", "templates")

    def __init__(
        self,
        templates: tuple[MetricEvent, ...],
        slots: list[int],
        columns: BatchColumns,
        stamp: tuple[int, int],
    ) -> None:
        self.templates = templates
        #: Per event, its host and family's place in the fleet's sequence numbers.
        self.slots = slots
        self.columns = columns
        #: (interval, templates replaced in the fleet so far) when it was made.
        self.stamp = stamp


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
        # (first host, events) -> the templates of the batch last given from there.
        self._batches: dict[tuple[str, int], tuple[MetricEvent, ...]] = {}
        # A batch's hosts -> where their values lie and their counters' constants.
        self._columns: dict[tuple[int, ...], BatchColumns] = {}
        # A batch's hosts -> its templates, its events' slots in _seq and its columns.
        self._batch_rows: dict[tuple[int, ...], _BatchRows] = {}
        # Templates replaced so far: a batch's kept rows hold while this stays.
        self._template_changes = 0

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
        for template, seq, values in self._rows(timestamp_ms, interval_ms, indices):
            yield EventValues(template, timestamp_ms, seq, values)

    def event_batches(
        self,
        timestamp_ms: int,
        interval_ms: int = 10_000,
        indices: Iterable[int] | None = None,
        *,
        hosts_per_batch: int = 40,
    ) -> Iterator[EventBatch]:
        """:meth:`event_values` in batches of ``hosts_per_batch`` hosts' events, in the same order.

        A batch of the same hosts gives the same ``templates`` tuple every tick
        while their templates stay, so a producer writes it by the layout it
        learned; its counters are computed for all its hosts at once
        (:class:`~producers.simulation.columns.BatchColumns`), the same values.
        Sequence numbers advance as with :meth:`events`.
        """
        if hosts_per_batch < 1:
            raise ValueError(f"hosts_per_batch must be 1 or more, not {hosts_per_batch}")
        t = timestamp_ms / 1000.0
        seq = self._seq
        order = list(range(len(self.host_ids)) if indices is None else indices)
        models = [self.model(index) for index in order]
        for model, jitters in zip(models, self._jitters(order, t), strict=True):
            model.at(t, jitters)
        for first in range(0, len(order), hosts_per_batch):
            hosts = order[first : first + hosts_per_batch]
            batch_models = models[first : first + hosts_per_batch]
            key = tuple(hosts)
            known = self._batch_rows.get(key)
            if known is None or known.stamp != (interval_ms, self._template_changes):
                known = self._batch_rows_of(hosts, batch_models, interval_ms)
            templates, slots, columns = known.templates, known.slots, known.columns
            seqs = [seq[slot] for slot in slots]
            for slot in slots:
                seq[slot] += 1
            yield EventBatch(
                templates, timestamp_ms, seqs, columns.values(batch_models), columns.ends
            )

    def _batch_rows_of(
        self, hosts: list[int], models: list[HostModel], interval_ms: int
    ) -> _BatchRows:
        """A batch's templates, the slots of its events' sequence numbers and its columns (kept)."""
        families = self.families
        per_host = len(families)
        templates: list[MetricEvent] = []
        slots: list[int] = []
        for index, model in zip(hosts, models, strict=True):
            for offset, family in enumerate(families):
                templates.append(self._template_of(index, model, offset, family, interval_ms))
                slots.append(index * per_host + offset)
        key = tuple(hosts)
        columns = self._columns.get(key)
        if columns is None:
            if len(self._columns) >= 100_000:
                self._columns.clear()
            columns = self._columns[key] = BatchColumns(models, families)
        if len(self._batch_rows) >= 100_000:
            self._batch_rows.clear()
        known = self._batch_rows[key] = _BatchRows(
            self._batch_templates(templates), slots, columns, (interval_ms, self._template_changes)
        )
        return known

    def _template_of(
        self, index: int, model: HostModel, offset: int, family: str, interval_ms: int
    ) -> MetricEvent:
        """Host ``index``'s template of ``family`` (its ``offset`` among the families)."""
        slot = index * len(self.families) + offset
        template = self._templates[slot]
        if template is None or template.interval_ms != interval_ms:
            template = self._templates[slot] = self._template(index, model, family, interval_ms)
            self._template_changes += 1
        return template

    def _batch_templates(self, templates: list[MetricEvent]) -> tuple[MetricEvent, ...]:
        """``templates`` as the tuple given last time for the same ones (kept by first host)."""
        key = (templates[0].host, len(templates))
        known = self._batches.get(key)
        if (
            known is None
            or len(known) != len(templates)
            or any(a is not b for a, b in zip(known, templates, strict=True))
        ):
            known = self._batches[key] = tuple(templates)
        return known

    def _rows(
        self, timestamp_ms: int, interval_ms: int, indices: Iterable[int] | None
    ) -> Iterator[tuple[MetricEvent, int, list[float]]]:
        """(template, seq, values) per host and family of ``indices``, host by host."""
        t = timestamp_ms / 1000.0
        families = self.families
        per_host = len(families)
        seq = self._seq
        order = list(range(len(self.host_ids)) if indices is None else indices)
        models = [self.model(index) for index in order]
        for index, model, jitters in zip(order, models, self._jitters(order, t), strict=True):
            model.at(t, jitters)
            base = index * per_host
            for offset, family in enumerate(families):
                template = self._template_of(index, model, offset, family, interval_ms)
                yield template, seq[base + offset], model.values(family, t)
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


class _FleetSource:
    """Some or all of a fleet's hosts, and the families they publish."""

    def __init__(self, fleet: SimulatedFleet, indices: Sequence[int] | None = None) -> None:
        self.fleet = fleet
        self.indices = indices

    @property
    def families(self) -> Sequence[str]:
        return self.fleet.families


class FleetValues(_FleetSource):
    """A simulated fleet, or some of its hosts, as the producer's event source.

    It gives :class:`EventValues` (a template and the tick's values per host
    and family), which the publisher writes by learned layout.

    Args:
        fleet: the fleet.
        indices: which of its hosts (default: all), e.g. one process's share.
    """

    def events(self, timestamp_ms: int, interval_ms: int) -> Iterator[EventValues]:
        return self.fleet.event_values(timestamp_ms, interval_ms, self.indices)


class FleetBatches(_FleetSource):
    """A simulated fleet, or some of its hosts, as the producer's event source, in batches.

    It gives :class:`EventBatch` objects, which the publisher writes into one
    buffer laid out once and checks at once (``EventPublisher.publish_batch``):
    what ``hoststream produce --simulate-hosts`` runs. The events are those
    of :class:`FleetValues`, in the same order.

    Args:
        fleet: the fleet.
        indices: which of its hosts (default: all), e.g. one process's share.
        hosts_per_batch: hosts whose events make one batch (a paced tick
            checks its schedule between batches).
    """

    def __init__(
        self,
        fleet: SimulatedFleet,
        indices: Sequence[int] | None = None,
        hosts_per_batch: int = 40,
    ) -> None:
        super().__init__(fleet, indices)
        self.hosts_per_batch = hosts_per_batch

    def events(self, timestamp_ms: int, interval_ms: int) -> Iterator[EventBatch]:
        return self.fleet.event_batches(
            timestamp_ms, interval_ms, self.indices, hosts_per_batch=self.hosts_per_batch
        )

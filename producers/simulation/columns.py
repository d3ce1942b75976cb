"""A batch of simulated hosts' values computed in columns: the counters of many hosts at once.

A host's counters are each a constant times a term of the tick (uptime,
busy time, "work done"): :meth:`HostModel.values` computes them host by host
with small NumPy arrays. :class:`BatchColumns` concatenates the constants of a
batch of hosts once, so a tick computes every counter of the batch with one
NumPy operation per kind, and writes them, with the values computed host by
host, straight into the batch's array of values. The operations are the same,
element by element, so the values are the same, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hoststream.producers.simulation.model import HostModel

__all__ = ["BatchColumns"]


class _Column:
    """One kind of counter across a batch: where its values go, whose they are, the constants."""

    __slots__ = ("at", "host", "k1", "k2")

    def __init__(self) -> None:
        self.at: Any = []
        self.host: Any = []
        self.k1: Any = []
        self.k2: Any = []


class BatchColumns:
    """Where each value of a batch of hosts' events lies, and their counters' constants.

    Args:
        models: the batch's hosts, in the order of its events.
        families: each host's families, in the order of its events.
    """

    __slots__ = ("_builders", "_columns", "_families", "_scalars_at", "ends", "size")

    def __init__(self, models: Sequence[HostModel], families: Sequence[str]) -> None:
        self._families = tuple(families)
        # Per host, its families' scalar value builders, in order.
        self._builders = [model.scalar_builders(self._families) for model in models]
        columns: dict[str, _Column] = {}
        scalars_at: list[int] = []
        #: Per event, where its values end in the batch's values.
        self.ends: list[int] = []
        at = 0
        for host, model in enumerate(models):
            for family in self._families:
                counters = model.counter_column(family)
                counted = 0 if counters is None else len(counters[1])
                scalars = len(model.series(family)) - counted
                scalars_at.extend(range(at, at + scalars))
                at += scalars
                if counters is not None:
                    kind, k1, k2 = counters
                    column = columns.setdefault(kind, _Column())
                    column.at.extend(range(at, at + counted))
                    column.host.extend([host] * counted)
                    column.k1.append(k1)
                    column.k2.append(k1 if k2 is None else k2)
                    at += counted
                self.ends.append(at)
        self.size = at
        self._scalars_at = np.asarray(scalars_at, dtype=np.intp)
        for column in columns.values():
            column.at = np.asarray(column.at, dtype=np.intp)
            column.host = np.asarray(column.host, dtype=np.intp)
            column.k1 = np.concatenate(column.k1)
            column.k2 = np.concatenate(column.k2)
        self._columns = columns

    def values(self, models: Sequence[HostModel]) -> Any:
        """Every value of the batch's events at the tick each model's :meth:`~HostModel.at`
        started, one event after the other: a float64 array of :attr:`size`."""
        scalars: list[float] = []
        terms = [
            model.batch_row(builders, scalars)
            for model, builders in zip(models, self._builders, strict=True)
        ]
        uptime, busy, shaped = np.array(terms, dtype=np.float64).reshape(-1, 3).T
        out = np.empty(self.size, dtype=np.float64)
        out[self._scalars_at] = np.array(scalars, dtype=np.float64)
        # The same expressions as HostModel._cpu, _disk and _network, per element.
        cpu = self._columns.get("cpu")
        if cpu is not None:
            out[cpu.at] = cpu.k1 * uptime[cpu.host] + cpu.k2 * busy[cpu.host]
        disk = self._columns.get("disk")
        if disk is not None:
            out[disk.at] = np.floor(shaped[disk.host] * disk.k1) * disk.k2
        network = self._columns.get("network")
        if network is not None:
            out[network.at] = np.trunc(shaped[network.host] * network.k1)
        return out

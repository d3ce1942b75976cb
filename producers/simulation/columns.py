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

from hoststream.producers.simulation.hashing import units_array
from hoststream.producers.simulation.model import HostModel, memory_values

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

    __slots__ = (
        "_builders",
        "_columns",
        "_families",
        "_filesystems",
        "_filesystems_at",
        "_memory",
        "_memory_at",
        "_scalars_at",
        "ends",
        "size",
    )

    def __init__(self, models: Sequence[HostModel], families: Sequence[str]) -> None:
        self._families = tuple(families)
        # Per host, its families' scalar value builders, in order (memory's are in columns).
        self._builders = [
            model.scalar_builders(self._families, in_columns=("memory", "disk")) for model in models
        ]
        memory_at: list[int] = []
        filesystems_at: list[int] = []
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
                in_columns = {"memory": memory_at, "disk": filesystems_at}
                in_columns.get(family, scalars_at).extend(range(at, at + scalars))
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
        # The filesystems' values' places (host after host), and their constants.
        self._filesystems_at = np.asarray(filesystems_at, dtype=np.intp)
        self._filesystems = (
            _FilesystemColumns(models) if "disk" in self._families and models else None
        )
        # Per host, its memory values' places (host after host), and its constants.
        self._memory_at = np.asarray(memory_at, dtype=np.intp)
        self._memory = (
            _MemoryColumns([model.memory_constants() for model in models])
            if "memory" in self._families and models
            else None
        )
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
        uptime, busy, shaped, level = np.array(terms, dtype=np.float64).reshape(-1, 4).T
        out = np.empty(self.size, dtype=np.float64)
        out[self._scalars_at] = np.array(scalars, dtype=np.float64)
        if self._memory is not None:
            out[self._memory_at] = self._memory.values(models[0].tick_instant(), uptime, level)
        if self._filesystems is not None:
            out[self._filesystems_at] = self._filesystems.values(models[0].tick_instant())
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


def _kb(values: Any) -> Any:
    """``HostModel``'s ``int(value) >> 10 << 10`` on floats: truncate, then floor to 1 KiB.

    Dividing and multiplying by 1024 are exact, so these are the same numbers.
    """
    return np.floor(np.trunc(values) / 1024.0) * 1024.0


class _MemoryColumns:
    """The memory family's values of a batch's hosts: ``HostModel._memory``, in columns.

    Both compute :func:`~producers.simulation.model.memory_values`; Python's
    ``min``/``max`` of two floats and NumPy's ``minimum``/``maximum`` give the
    same number, so the values are the same, bit for bit.
    """

    __slots__ = ("app", "keys", "leak", "page_cache", "swap", "total")

    def __init__(self, constants: Sequence[tuple[int, float, float, float, int, int]]) -> None:
        total, leak, app, page_cache, swap, keys = zip(*constants, strict=True)
        # Bytes are integers below 2**53: exact as doubles, as Python converts them.
        self.total = np.array(total, dtype=np.float64)
        self.leak = np.array(leak, dtype=np.float64)
        self.app = np.array(app, dtype=np.float64)
        self.page_cache = np.array(page_cache, dtype=np.float64)
        self.swap = np.array(swap, dtype=np.float64)
        self.keys = np.array(keys, dtype=np.uint64)

    def values(self, t: float, uptime: Any, level: Any) -> Any:
        """The 9 memory values of each host at ``t``, host after host."""
        n1, n2 = units_array(self.keys, int(t))
        values = memory_values(
            self.total,
            self.leak,
            self.app,
            self.page_cache,
            self.swap,
            uptime=uptime,
            level=level,
            n1=n1,
            n2=n2,
            minimum=np.minimum,
            maximum=np.maximum,
            kb=_kb,
        )
        return np.stack(values, axis=1).ravel()


class _FilesystemColumns:
    """The filesystems' values of a batch's hosts: ``HostModel._filesystems``, in columns.

    Python's integer arithmetic on byte and inode counts (below 2**53) is done
    on exact doubles: truncating, flooring and multiplying by 4096 are exact.
    """

    __slots__ = (
        "fill_high",
        "fill_low",
        "fill_period",
        "fill_phase",
        "host",
        "inodes",
        "keys",
        "reserved",
        "size",
        "zeros",
    )

    def __init__(self, models: Sequence[HostModel]) -> None:
        rows = [(host, fs) for host, model in enumerate(models) for fs in model.profile.filesystems]
        self.host = np.array([host for host, _ in rows], dtype=np.intp)
        self.keys = np.array([model.disk_noise_key() for model in models], dtype=np.uint64)

        def column(values: list[float]) -> Any:
            return np.array(values, dtype=np.float64)

        self.size = column([fs.size_bytes for _, fs in rows])
        self.inodes = column([fs.inodes for _, fs in rows])
        self.reserved = column([fs.reserved_bytes for _, fs in rows])
        self.fill_low = column([fs.fill_low for _, fs in rows])
        self.fill_high = column([fs.fill_high for _, fs in rows])
        self.fill_period = column([fs.fill_period_s for _, fs in rows])
        self.fill_phase = column([fs.fill_phase for _, fs in rows])
        self.zeros = np.zeros(len(rows), dtype=np.float64)

    def values(self, t: float) -> Any:
        """The 7 values of each filesystem at ``t``, filesystem after filesystem."""
        n1, n2 = units_array(self.keys, int(t))
        n1, n2 = n1[self.host], n2[self.host]
        phase = np.remainder(t / self.fill_period + self.fill_phase, 1.0)
        used_fraction = self.fill_low + (self.fill_high - self.fill_low) * phase
        used = self.size * np.minimum(1.0, used_fraction + 0.0005 * (n1 - 0.5))
        free = np.floor((self.size - np.trunc(used)) / 4096.0) * 4096.0
        files_used = np.trunc(self.inodes * (0.01 + 0.2 * used_fraction + 0.0001 * n2))
        zeros = self.zeros
        return np.stack(
            (
                zeros,
                self.size,
                free,
                np.maximum(0.0, free - self.reserved),
                self.inodes,
                self.inodes - files_used,
                zeros,
            ),
            axis=1,
        ).ravel()

"""The fields of many window aggregates' Avro bodies, found together with NumPy.

A window aggregate's body is laid out as the current schema writes it
(:mod:`sinks.aggregate_reader`): host, metric, labels, kind and window size
(the series), then the window's start and end and the count (three varints),
ten doubles, the rate's union branch and the rate, then the region's branch
and the region. Its strings are short (a one-byte length) and the labels one
block: that is what hoststream writes. :func:`read_columns` walks every body
of a batch at once through one buffer: each step reads one byte (or one
varint) of every body, so a batch of 10,000 aggregates costs a few dozen
array operations instead of 10,000 Python parsers. A body laid out otherwise
(a long string, several label blocks, bytes left over or missing) is marked
as not fitting, for the reader to parse alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Columns", "read_columns"]

_CONFLUENT_HEADER = 5
_SINGLE_OBJECT_HEADER = 10
_LONG_PREFIX = 0xC3
#: The ten doubles: sum, min, max, mean, last, p50, p90, p95, p99, quantile error.
_DOUBLES = 10
#: An Avro long is at most ten bytes.
_MAX_VARINT = 10
#: The rate's and the region's union branches: null, then the value.
_NULL, _VALUE = 0, 2

Ints = np.ndarray[Any, np.dtype[np.int64]]
Flags = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True, slots=True)
class Columns:
    """What :func:`read_columns` read, one entry per body, as Python lists.

    A body whose ``fits`` is False has meaningless entries elsewhere.

    Attributes:
        fits: whether the body is laid out as above, to its last byte.
        series_end: where the series' bytes end (after the window size).
        tail: where the region's branch starts (the series' bytes that follow the values).
        window_start: the window's start, ms.
        window_end: the window's end, ms.
        count: the samples in the window.
        stats: the ten doubles, in the schema's order.
        rate: the rate, or None.
    """

    fits: list[bool]
    series_end: list[int]
    tail: list[int]
    window_start: list[int]
    window_end: list[int]
    count: list[int]
    stats: list[list[float]]
    rate: list[float | None]


class _Walk:
    """Positions in every body of one buffer, moved forward together."""

    def __init__(self, bodies: Sequence[bytes]) -> None:
        self.buffer = b"".join(bodies)
        # Room past the end, so a read past a broken body's end stays in the array.
        self.bytes = np.frombuffer(self.buffer + bytes(16), np.uint8)
        sizes = np.fromiter(map(len, bodies), np.int64, len(bodies))
        self.ends = np.cumsum(sizes)
        self.starts = self.ends - sizes
        self.fits: Flags = np.ones(len(bodies), np.bool_)
        self.limit = len(self.buffer)

    def byte(self, at: Ints) -> Ints:
        """The byte at each of ``at`` (a position past every body reads as zero)."""
        return self.bytes[np.minimum(at, self.limit)].astype(np.int64)

    def short_string(self, at: Ints, where: Flags | None = None) -> Ints:
        """Past a string of fewer than 64 bytes (a one-byte zig-zag length) at each of
        ``at``; only where ``where`` holds, if given (elsewhere ``at`` is kept)."""
        size = self.byte(at)
        short = (size & 0x81) == 0  # else longer, or a negative length
        if where is None:
            self.fits &= short
            return at + 1 + (size >> 1)
        self.fits &= short | ~where
        return np.where(where, at + 1 + (size >> 1), at)

    def varint(self, at: Ints) -> tuple[Ints, Ints]:
        """The zig-zag longs at ``at``, and where each ends."""
        value = np.zeros(len(at), np.uint64)
        done = np.zeros(len(at), np.bool_)
        end = at.copy()
        for i in range(_MAX_VARINT):
            byte = self.byte(at + i)
            going = ~done
            value |= np.where(going, byte & 0x7F, 0).astype(np.uint64) << np.uint64(7 * i)
            end += going
            done |= (byte & 0x80) == 0
            if done.all():
                break
        self.fits &= done
        signed = (value >> np.uint64(1)).astype(np.int64) ^ -(value & np.uint64(1)).astype(np.int64)
        return signed, end


def read_columns(bodies: Sequence[bytes]) -> Columns:
    """The fields of each of ``bodies`` (message values: wire-format header and Avro body)."""
    walk = _Walk(bodies)
    first = walk.byte(walk.starts)
    at = walk.starts + np.where(first == _LONG_PREFIX, _SINGLE_OBJECT_HEADER, _CONFLUENT_HEADER)
    at = walk.short_string(at)  # host
    at = walk.short_string(at)  # metric
    # The labels: one block (its count, zig-zag, in one byte), a name and a
    # value each, then a zero.
    block = walk.byte(at)
    walk.fits &= (block & 0x81) == 0
    labels = block >> 1
    at += 1
    for i in range(int(labels[walk.fits].max(initial=0))):
        inside = labels > i
        at = walk.short_string(walk.short_string(at, inside), inside)
    labelled = labels > 0
    walk.fits &= ~labelled | (walk.byte(at) == 0)
    at += labelled
    kind = walk.byte(at)
    walk.fits &= (kind == 0) | (kind == 2)  # gauge, counter
    _size, series_end = walk.varint(at + 1)
    window_start, at = walk.varint(series_end)
    window_end, at = walk.varint(at)
    count, at = walk.varint(at)
    # The doubles and the rate: one gather of every double of the batch.
    doubles = np.ndarray((max(0, len(walk.bytes) - 7),), "<f8", walk.bytes, 0, (1,))
    stats = doubles[np.minimum(at[:, None] + 8 * np.arange(_DOUBLES), walk.limit)]
    branch = walk.byte(at + 8 * _DOUBLES)
    has_rate = branch == _VALUE
    walk.fits &= has_rate | (branch == _NULL)
    rates = doubles[np.minimum(at + 8 * _DOUBLES + 1, walk.limit)]
    tail = at + 8 * _DOUBLES + 1 + 8 * has_rate
    region = walk.byte(tail)
    walk.fits &= (region == _NULL) | (region == _VALUE)
    body_end = walk.short_string(tail + 1, region == _VALUE)
    walk.fits &= body_end == walk.ends
    starts = walk.starts
    return Columns(
        fits=walk.fits.tolist(),
        series_end=(series_end - starts).tolist(),
        tail=(tail - starts).tolist(),
        window_start=window_start.tolist(),
        window_end=window_end.tolist(),
        count=count.tolist(),
        stats=stats.tolist(),
        rate=[r if h else None for r, h in zip(rates.tolist(), has_rate.tolist(), strict=True)],
    )

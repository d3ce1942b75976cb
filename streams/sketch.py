"""A mergeable quantile sketch (DDSketch) whose state is plain JSON.

The bucket mapping is ddsketch's own :class:`~ddsketch.mapping.LogarithmicMapping`,
so every quantile this sketch returns lies within ``relative_accuracy`` of the
true one, as in the DDSketch paper. The buckets are kept here in sparse
dictionaries rather than in ddsketch's dense stores because the window state
has to be written to a Faust table and read back exactly: a sketch round-trips
through :meth:`QuantileSketch.to_json` without loss, and two sketches merge by
adding bucket counts, which is exact and order-independent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from ddsketch.mapping import LogarithmicMapping

__all__ = [
    "DEFAULT_RELATIVE_ACCURACY",
    "QuantileSketch",
    "bucket_ordinals",
    "ordinal_values",
]

#: Each estimated quantile lies within 1% of the true quantile's value.
DEFAULT_RELATIVE_ACCURACY = 0.01


@lru_cache(maxsize=8)
def _mapping_for(relative_accuracy: float) -> LogarithmicMapping:
    # Immutable after construction; one per accuracy instead of one per sketch.
    return LogarithmicMapping(relative_accuracy)


#: Added to a bucket key so that ordinals of positive values are positive;
#: keys stay within about +-36,000 for any finite double at 1 % accuracy.
_ORDINAL_OFFSET = 1 << 20


def bucket_ordinals(
    values: npt.NDArray[np.float64], relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
) -> npt.NDArray[np.int32]:
    """The bucket of each value as one signed integer that sorts as the values do.

    The vectorised form of :meth:`QuantileSketch.add`: a positive value's
    ordinal is its :class:`LogarithmicMapping` key plus an offset, a negative
    value's the negated ordinal of its magnitude, and values too close to 0 to
    tell apart have 0. So ordering buckets by ordinal orders them by value,
    which is all a rank walk needs, for any mix of signs.
    """
    mapping = _mapping_for(relative_accuracy)
    magnitude = np.abs(values)
    with np.errstate(divide="ignore"):
        # math.log(v, 2) * multiplier, as LogarithmicMapping.key computes it
        keys = np.ceil(np.log(magnitude) / math.log(2) * mapping._multiplier)
    ordinals = np.where(magnitude > mapping.min_possible, keys + _ORDINAL_OFFSET, 0.0)
    return (np.sign(values) * ordinals).astype(np.int32)


def ordinal_values(
    ordinals: npt.NDArray[np.int32], relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
) -> npt.NDArray[np.float64]:
    """The value a bucket stands for (within ``relative_accuracy`` of all it holds)."""
    mapping = _mapping_for(relative_accuracy)
    keys = np.abs(ordinals).astype(np.float64) - _ORDINAL_OFFSET
    # LogarithmicMapping.value: pow(2, key / multiplier) * 2 / (1 + gamma)
    magnitude = np.power(2.0, keys / mapping._multiplier) * (2.0 / (1 + mapping.gamma))
    out: npt.NDArray[np.float64] = np.where(ordinals == 0, 0.0, np.sign(ordinals) * magnitude)
    return out


def _key_at_rank(buckets: Mapping[int, int], rank: float, *, lower: bool) -> int:
    # The same walk as ddsketch's DenseStore.key_at_rank, over sorted sparse keys.
    running = 0
    key = 0
    for key in sorted(buckets):
        running += buckets[key]
        if (lower and running > rank) or (not lower and running >= rank + 1):
            return key
    return key


class QuantileSketch:
    """Counts of values in logarithmic buckets: quantiles with a relative-error bound."""

    __slots__ = ("_mapping", "negative", "positive", "relative_accuracy", "zero")

    def __init__(self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> None:
        """An empty sketch.

        Args:
            relative_accuracy: the guaranteed relative error of quantiles, in (0, 1).
                Only sketches with the same accuracy merge.
        """
        self.relative_accuracy = relative_accuracy
        self._mapping = _mapping_for(relative_accuracy)
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}
        self.zero = 0

    @property
    def count(self) -> int:
        return self.zero + sum(self.positive.values()) + sum(self.negative.values())

    def add(self, value: float) -> None:
        """Count one value."""
        if value > self._mapping.min_possible:
            key = self._mapping.key(value)
            self.positive[key] = self.positive.get(key, 0) + 1
        elif value < -self._mapping.min_possible:
            key = self._mapping.key(-value)
            self.negative[key] = self.negative.get(key, 0) + 1
        else:
            self.zero += 1

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.add(value)

    def merge(self, other: QuantileSketch) -> None:
        """Add ``other``'s counts to this sketch; exact, and the same in any order."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError(
                f"cannot merge sketches of relative accuracy {self.relative_accuracy}"
                f" and {other.relative_accuracy}"
            )
        for mine, theirs in ((self.positive, other.positive), (self.negative, other.negative)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        self.zero += other.zero

    def quantile(self, q: float) -> float | None:
        """The estimated ``q``-quantile (0 <= q <= 1), or None when the sketch is empty.

        The rank is ``q * (count - 1)``, as in ddsketch: the estimate is within
        ``relative_accuracy`` of ``sorted(values)[floor(q * (count - 1))]``.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must lie in [0, 1], got {q}")
        count = self.count
        if count == 0:
            return None
        rank = q * (count - 1)
        negative_count = sum(self.negative.values())
        if rank < negative_count:
            key = _key_at_rank(self.negative, negative_count - rank - 1, lower=False)
            return -self._mapping.value(key)
        if rank < negative_count + self.zero:
            return 0.0
        key = _key_at_rank(self.positive, rank - negative_count - self.zero, lower=True)
        return float(self._mapping.value(key))

    def copy(self) -> QuantileSketch:
        twin = QuantileSketch(self.relative_accuracy)
        twin.positive = dict(self.positive)
        twin.negative = dict(self.negative)
        twin.zero = self.zero
        return twin

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, buckets sorted, so equal sketches serialize to equal bytes."""
        return {
            "a": self.relative_accuracy,
            "p": [[k, self.positive[k]] for k in sorted(self.positive)],
            "n": [[k, self.negative[k]] for k in sorted(self.negative)],
            "z": self.zero,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuantileSketch:
        sketch = cls(float(data["a"]))
        sketch.positive = {int(k): int(n) for k, n in data["p"]}
        sketch.negative = {int(k): int(n) for k, n in data["n"]}
        sketch.zero = int(data["z"])
        return sketch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"QuantileSketch(relative_accuracy={self.relative_accuracy}, count={self.count})"

"""The correctly rounded sum of floats, also where ``math.fsum`` gives up."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

__all__ = ["exact_sum"]


def exact_sum(values: Sequence[float]) -> float:
    """``math.fsum(values)``; where that overflows, the exact sum rounded, or ±inf.

    ``math.fsum`` raises OverflowError when a partial sum leaves the float range
    (two samples of 1e308 in one window), even when the whole sum does not. A
    window's statistics must not stop the stream worker on such values: their
    exact rational sum is rounded instead, to infinity with its sign where it
    lies beyond the largest float, as IEEE addition rounds.
    """
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):  # ValueError: inf and -inf both in it
        infinite = {v for v in values if not math.isfinite(v)}
        if infinite:  # IEEE addition: NaN or opposite infinities make NaN, else the infinity
            return infinite.pop() if len(infinite) == 1 and not math.isnan(*infinite) else math.nan
        exact = sum(map(Fraction, values), Fraction(0))
        try:
            return float(exact)
        except OverflowError:
            return math.inf if exact > 0 else -math.inf

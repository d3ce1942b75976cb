"""Counter-based hashing: the simulation's only source of randomness.

Every random value is a pure function of integers (seed, host, series, time
slot), so a value does not depend on what was computed before it, in which
order, or in which process. Python's ``hash()`` is not used: it is salted for
strings and its algorithm is an implementation detail.
"""

from __future__ import annotations

from typing import Any

__all__ = ["derive", "mix64", "unit", "unit_array", "units", "units_array"]

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_INV_2_64 = 1.0 / (1 << 64)
_INV_2_16 = 1.0 / (1 << 16)


def mix64(x: int) -> int:
    """SplitMix64's finaliser: a bijection on 64-bit integers with good avalanche."""
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def derive(key: int, *parts: int) -> int:
    """A new 64-bit key from ``key`` and integer parts (e.g. a host index, then a purpose)."""
    for part in parts:
        key = mix64(key ^ ((part * _GOLDEN) & _MASK))
    return key


def unit(key: int, n: int) -> float:
    """A uniform value in [0, 1) for slot ``n`` of the stream ``key``."""
    return mix64(key ^ ((n * _GOLDEN) & _MASK)) * _INV_2_64


def units(key: int, n: int) -> tuple[float, float, float, float]:
    """Four uniform values in [0, 1) (16 bits each) from one hash: cheap when that is enough."""
    h = mix64(key ^ ((n * _GOLDEN) & _MASK))
    return (
        (h & 0xFFFF) * _INV_2_16,
        ((h >> 16) & 0xFFFF) * _INV_2_16,
        ((h >> 32) & 0xFFFF) * _INV_2_16,
        (h >> 48) * _INV_2_16,
    )


def unit_array(keys: Any, n: int) -> Any:
    """:func:`unit` of every key of the uint64 NumPy array ``keys`` for slot ``n``, at once.

    The same values, bit for bit: the integer steps wrap modulo 2**64 as the
    masks do, and a uint64 converts to the nearest double as an int does.
    """
    import numpy as np

    x = keys ^ np.uint64((n * _GOLDEN) & _MASK)
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return x.astype(np.float64) * _INV_2_64


def units_array(keys: Any, n: int) -> tuple[Any, Any]:
    """The first two of :func:`units` for every key of the uint64 NumPy array ``keys``, at once.

    The same values, bit for bit, as :func:`unit_array` is :func:`unit`'s.
    """
    import numpy as np

    x = keys ^ np.uint64((n * _GOLDEN) & _MASK)
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    low = np.uint64(0xFFFF)
    return (
        (x & low).astype(np.float64) * _INV_2_16,
        ((x >> np.uint64(16)) & low).astype(np.float64) * _INV_2_16,
    )

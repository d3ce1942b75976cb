"""Window sums are math.fsum's, also where a burst of windows is summed in blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hoststream.streams import aggregator
from hoststream.streams.aggregator import _exact_sums


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 16])
def test_exact_sums_equal_fsum_of_each_window_whatever_the_block(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(aggregator, "_FSUM_BLOCK", block)
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 12, size=200)
    # Values whose naive sum loses bits: large and tiny magnitudes mixed.
    values = rng.normal(size=int(lengths.sum())) * 10.0 ** rng.integers(
        -8, 16, size=int(lengths.sum())
    )
    ends = np.cumsum(lengths)
    starts = ends - lengths
    sums = _exact_sums(values, starts, ends)
    want = [math.fsum(values[a:b]) for a, b in zip(starts, ends, strict=True)]
    assert sums.tolist() == want


def test_exact_sums_of_no_windows_is_empty() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert len(_exact_sums(np.zeros(0), empty, empty)) == 0

"""Window sums are math.fsum's, also where a burst of windows is summed in blocks."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from hoststream.schemas.records import MetricKind
from hoststream.streams import aggregator
from hoststream.streams.aggregator import WindowAggregator, _exact_sums
from hoststream.streams.exact import exact_sum
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.state import FamilyState, series_key

T0 = 1_798_761_600_000


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


_PARTS = st.one_of(
    st.integers(-(2**40), 2**40).map(float),  # whole numbers: summed by NumPy
    st.sampled_from([0.0, -0.0, 2.0**52, -(2.0**52), 2.0**53 - 1, 1e308, -1e308, 0.5]),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)


@settings(max_examples=300, deadline=None)
@given(windows=st.lists(st.lists(_PARTS, min_size=1, max_size=8), min_size=1, max_size=20))
def test_exact_sums_are_fsum_bit_for_bit_whole_numbers_or_not(windows: list[list[float]]) -> None:
    values = np.array([v for w in windows for v in w])
    ends = np.cumsum([len(w) for w in windows])
    starts = ends - [len(w) for w in windows]
    want = [_rounded(w) for w in windows]
    # Bit for bit: 0.0 for a zero, never -0.0, as math.fsum gives.
    assert _exact_sums(values, starts, ends).tobytes() == np.array(want).tobytes()


def _rounded(values: list[float]) -> float:
    """The exact sum, rounded to the nearest float (±inf beyond the largest)."""
    exact = sum(map(Fraction, values), Fraction(0))
    try:
        return float(exact)
    except OverflowError:
        return math.inf if exact > 0 else -math.inf


def test_a_window_whose_sum_leaves_the_float_range_closes() -> None:
    # math.fsum raises on [1e308, 1e308, ...]: the worker stopped at such a window.
    aggregator = WindowAggregator(["1m"], grace_ms=0, metrics=StreamMetrics(CollectorRegistry()))
    state = FamilyState("h", "system")
    series = state.series_indexes([(series_key("node_load1", {}), MetricKind.GAUGE)])
    for t, value in enumerate([1e308, 1e308, -1e308, 1e308, 1e308]):
        aggregator.accept(state, T0 + t * 10_000, 10_000, series, np.array([value]))
    before = state.horizon
    aggregator.accept(state, T0 + 60_000, 10_000, series, np.array([1.0]))
    closed = aggregator.close([(state, before)])
    assert closed.stats[0, 0] == math.inf  # the sum, 3e308
    assert _exact_sums(np.array([1e308, 1e308, -1e308]), np.array([0]), np.array([3])) == [1e308]


def test_infinities_sum_as_ieee_addition_would() -> None:
    inf = math.inf
    assert exact_sum([1e308, 1e308]) == inf
    assert exact_sum([-1e308, -1e308]) == -inf
    assert exact_sum([inf, 1.0, inf]) == inf
    assert math.isnan(exact_sum([inf, -inf]))
    assert math.isnan(exact_sum([math.nan, inf, -inf]))

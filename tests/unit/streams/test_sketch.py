"""The JSON-serializable sketch agrees with ddsketch and keeps its error bound."""

from __future__ import annotations

import json
import random

import pytest
from ddsketch import DDSketch

from hoststream.streams.sketch import QuantileSketch
from hoststream.streams.summary import Summary
from tests.support.reference import exact_quantile

QS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)


def sample_values(seed: int, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.choice([-1, 1, 1, 1]) * rng.lognormvariate(2, 2) for _ in range(n)] + [0.0] * 3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_equal_ddsketch_and_lie_within_relative_error(seed: int) -> None:
    values = sample_values(seed, 500)
    ours, theirs = QuantileSketch(0.01), DDSketch(0.01)
    for v in values:
        ours.add(v)
        theirs.add(v)
    for q in QS:
        assert ours.quantile(q) == pytest.approx(theirs.get_quantile_value(q), rel=1e-12)
        true = exact_quantile(values, q)
        assert abs(ours.quantile(q) - true) <= 0.01 * abs(true) + 1e-12


def test_merge_is_exact_and_round_trips_through_json() -> None:
    values = sample_values(4, 300)
    whole = QuantileSketch()
    whole.extend(values)
    left, right = QuantileSketch(), QuantileSketch()
    left.extend(values[:120])
    right.extend(values[120:])
    right.merge(left)
    assert right == whole
    assert QuantileSketch.from_json(json.loads(json.dumps(whole.to_json()))) == whole


def test_sketches_of_different_accuracy_do_not_merge() -> None:
    with pytest.raises(ValueError, match="relative accuracy"):
        QuantileSketch(0.01).merge(QuantileSketch(0.02))


def test_empty_sketch_has_no_quantile() -> None:
    assert QuantileSketch().quantile(0.5) is None


def test_summary_rollup_equals_summary_of_all_points() -> None:
    rng = random.Random(5)
    points = [(i * 1000, rng.uniform(0, 10) * 8 // 1 / 8) for i in range(100)]  # exact sums
    whole = Summary.of_points(points)
    parts = [Summary.of_points(points[i : i + 10]) for i in range(0, 100, 10)]
    rolled = parts[0]
    for part in parts[1:]:
        rolled = rolled.merged(part)
    assert rolled.to_json() == whole.to_json()
    assert Summary.from_json(json.loads(json.dumps(whole.to_json()))) == whole

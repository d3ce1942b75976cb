"""A window state's series table: indexes looked up in bulk and one at a time agree."""

from __future__ import annotations

from hoststream.schemas import MetricKind
from hoststream.streams.state import FamilyState

IDLE = ("node_cpu_seconds_total", (("cpu", "0"), ("mode", "idle")))
USER = ("node_cpu_seconds_total", (("cpu", "0"), ("mode", "user")))
BUSY = ("hoststream_cpu_busy_ratio", (("cpu", "0"),))


def test_a_series_looked_up_alone_gets_the_index_a_bulk_lookup_gives() -> None:
    state = FamilyState("h1", "cpu")
    assert state.series_indexes(
        [(IDLE, MetricKind.COUNTER), (USER, MetricKind.COUNTER)]
    ).tolist() == [0, 1]
    assert state.series_index(USER, MetricKind.COUNTER) == 1
    assert state.series_index(BUSY, MetricKind.GAUGE) == 2  # new: appended
    assert state.series_index(BUSY, MetricKind.GAUGE) == 2
    assert state.series == [IDLE, USER, BUSY]
    assert state.series_indexes([(BUSY, MetricKind.GAUGE)]).tolist() == [2]


def test_a_series_looked_up_alone_with_another_kind_takes_that_kind() -> None:
    state = FamilyState("h1", "cpu")
    assert state.series_index(BUSY, MetricKind.GAUGE) == 0
    assert state.series_index(BUSY, MetricKind.COUNTER) == 0
    assert state.kinds == [MetricKind.COUNTER]
    assert len(state.series) == 1

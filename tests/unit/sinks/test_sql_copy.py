"""Window aggregates as COPY text: the values of aggregate_row, read back, without a database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hoststream.schemas import MetricKind, WindowAggregate
from hoststream.sinks.sql import copy_statement
from hoststream.sinks.sql_copy import COPY_COLUMNS, copy_text, series_text
from hoststream.sinks.sql_rows import (
    AGGREGATE_COLUMNS,
    AGGREGATE_STAGING,
    aggregate_row,
    latest_per_key,
)
from tests.support.shaped_reading import read_by_shape

T0 = 1_800_000_000_000
STAGED = [c for c in AGGREGATE_COLUMNS if AGGREGATE_STAGING[c][0] is not None]
_UNESCAPE = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def aggregate(window: int = 0, **overrides) -> WindowAggregate:
    fields = {
        "host": "web-1",
        "metric": "node_cpu_seconds_total",
        "kind": MetricKind.COUNTER,
        "window_size_ms": 60_000,
        "window_start": T0 + window * 60_000,
        "window_end": T0 + (window + 1) * 60_000,
        "count": 6,
        "sum": 60.5,
        "min": 1e-300,
        "max": 2.5e20,
        "mean": 1 / 3,
        "last": 15.0,
        "p50": 10.0,
        "p90": 14.0,
        "p95": 14.5,
        "p99": 15.0,
        "quantile_relative_error": 0.01,
        "labels": {"mode": "idle", "cpu": "0"},
        "rate_per_second": 0.25,
    }
    fields.update(overrides)
    return WindowAggregate(**fields)


def unescape(field: str) -> str | None:
    if field == "\\N":
        return None
    out, i = [], 0
    while i < len(field):
        pair = field[i : i + 2]
        if pair in _UNESCAPE:
            out.append(_UNESCAPE[pair])
            i += 2
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_back(text: bytes) -> list[dict[str, str | None]]:
    """The rows as PostgreSQL's COPY text parser would see them, by column."""
    lines = text.decode().split("\n")
    assert lines[-1] == ""
    return [
        dict(zip(COPY_COLUMNS, map(unescape, line.split("\t")), strict=True)) for line in lines[:-1]
    ]


def expected(a: WindowAggregate) -> dict[str, object]:
    return dict(zip(STAGED, aggregate_row(a), strict=True))


def same(row: dict[str, str | None], a: WindowAggregate) -> None:
    for column, value in expected(a).items():
        text = row[column]
        if value is None or isinstance(value, str):
            assert text == value, column
        else:
            assert text is not None
            assert float(text) == value, column


def test_the_copy_columns_are_the_staged_columns() -> None:
    assert sorted(COPY_COLUMNS) == sorted(STAGED)
    text = copy_statement("window_aggregates", COPY_COLUMNS).as_string(None)
    assert text.startswith('COPY "staged_window_aggregates" ("host", "metric", "labels_key", ')
    with pytest.raises(ValueError, match="not the staged columns"):
        copy_statement("window_aggregates", COPY_COLUMNS[:-1])


def test_rows_read_by_shape_or_in_full_carry_aggregate_rows_values() -> None:
    written = [
        aggregate(0),
        aggregate(1),
        aggregate(0, kind=MetricKind.GAUGE, rate_per_second=None, labels={}),
        aggregate(0, region="eu-west", count=2**40),
        aggregate(0, host="odd", labels={"path": 'C:\\dir\t"x"\nnext\r'}, region="a\\b"),
    ]
    read = read_by_shape(written, series_text)
    for records in (read, written):  # by shape, and decoded in full
        rows = read_back(copy_text(records))
        assert len(rows) == len(written)
        for row, a in zip(rows, written, strict=True):
            same(row, a)
    assert copy_text(read) == copy_text(written)
    assert copy_text([]) == b""


def test_a_missing_rate_and_region_are_null() -> None:
    [row] = read_back(copy_text([replace(aggregate(), rate_per_second=None)]))
    assert row["rate_per_second"] is None
    assert row["region"] is None
    assert row["kind"] == "COUNTER"


def test_one_window_read_by_shape_and_decoded_in_full_is_one_row_the_latest() -> None:
    first, later = aggregate(0, mean=1.0), aggregate(0, mean=2.0)
    [by_shape] = read_by_shape([later], series_text)
    aggregates, _ = latest_per_key([first, by_shape, aggregate(1)])
    assert aggregates == [by_shape, aggregate(1)]
    aggregates, _ = latest_per_key([by_shape, first])
    assert aggregates == [first]

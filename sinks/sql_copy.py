"""Window aggregates as ``COPY`` text, without a ``write_row`` per row.

A row of the staging table is its series' columns (host, metric, labels,
window size, kind, region), the same for every window of the series, then
the window's own (bounds, count, statistics). The series' part is encoded
once per series (:func:`series_text`, the SQL sink's
:class:`~sinks.aggregate_reader.AggregateReader` ``derive``); the window's
parts of a whole batch are formatted by one ``orjson`` call. Values are
finite (the validation contract refuses the others before the sink sees
them); a missing rate is ``\\N``, SQL's NULL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain, repeat
from typing import NamedTuple

import orjson

from hoststream.schemas import MetricKind, WindowAggregate
from hoststream.schemas.statistics import STATISTIC_FIELDS
from hoststream.sinks.aggregate_reader import AggregateSeries, AggregateValues
from hoststream.sinks.sql_rows import canonical_labels

__all__ = [
    "COPY_COLUMNS",
    "SERIES_COLUMNS",
    "WINDOW_COLUMNS",
    "SeriesText",
    "copy_text",
    "series_text",
    "series_text_of",
]

#: The series' staged columns, first in each row.
SERIES_COLUMNS = ("host", "metric", "labels_key", "window_size_ms", "kind", "region")
#: The window's staged columns, after them.
WINDOW_COLUMNS = ("window_start", "window_end", *STATISTIC_FIELDS, "quantile_relative_error")
#: The staged columns of ``window_aggregates`` in the order the text carries them.
COPY_COLUMNS = SERIES_COLUMNS + WINDOW_COLUMNS

_NULL = "\\N"
# COPY's text format: a backslash, tab, newline or carriage return is escaped.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_ESCAPED = re.compile(r"[\\\t\n\r]")


class SeriesText(NamedTuple):
    """One series of ``window_aggregates``: its part of the primary key, and of each row."""

    #: host, metric, labels_key and window size: with the window's start, the primary key.
    key: tuple[str, str, str, int]
    #: :data:`SERIES_COLUMNS` as COPY text, tab-terminated.
    text: bytes


def _field(value: str | None) -> str:
    if value is None:
        return _NULL
    # Names and labels seldom hold a character to escape: a search costs less than a translation.
    return value if _ESCAPED.search(value) is None else value.translate(_ESCAPES)


def series_text_of(
    host: str,
    metric: str,
    *,
    labels_key: str,
    window_size_ms: int,
    kind: MetricKind,
    region: str | None,
) -> SeriesText:
    """The series' columns as COPY text; ``labels_key`` is the canonical labels JSON."""
    fields = (_field(host), _field(metric), _field(labels_key), str(window_size_ms), kind.value)
    text = "\t".join((*fields, _field(region))) + "\t"
    return SeriesText((host, metric, labels_key, window_size_ms), text.encode())


def series_text(series: AggregateSeries | WindowAggregate) -> SeriesText:
    """The series' columns as COPY text (the SQL sink's per-series derivation).

    A whole aggregate carries the same fields as its series.
    """
    return series_text_of(
        series.host,
        series.metric,
        labels_key=canonical_labels(series.labels),
        window_size_ms=series.window_size_ms,
        kind=series.kind,
        region=series.region,
    )


def series_of(record: AggregateValues | WindowAggregate) -> SeriesText:
    """The series' text of a record read by shape or decoded in full."""
    if isinstance(record, AggregateValues):
        derived: SeriesText = record.shape.derived
        return derived
    return series_text(record)


def _window_values(record: AggregateValues | WindowAggregate) -> list[int | float | None]:
    """:data:`WINDOW_COLUMNS` of ``record``."""
    if isinstance(record, AggregateValues):
        stats = record.stats
        return [
            record.window_start,
            record.window_end,
            record.sample_count,
            *stats[:-1],
            record.rate_per_second,
            stats[-1],
        ]
    return [
        record.window_start,
        record.window_end,
        *(getattr(record, name) for name in STATISTIC_FIELDS),
        record.quantile_relative_error,
    ]


def copy_text(records: Sequence[AggregateValues | WindowAggregate]) -> bytes:
    """The rows of ``records`` as COPY text in :data:`COPY_COLUMNS` order, one line each."""
    if not records:
        return b""
    # One orjson call for every window column of the batch: "[[a,b],[c,d]]".
    # Numbers hold neither comma nor bracket, so the rows split at "],[" and
    # their commas become COPY's tabs; null (the missing rate) becomes \N.
    dumped = orjson.dumps([_window_values(r) for r in records])
    rows = dumped[2:-2].replace(b",", b"\t").replace(b"null", b"\\N").split(b"]\t[")
    series = [series_of(r).text for r in records]
    return b"".join(chain.from_iterable(zip(series, rows, repeat(b"\n"), strict=False)))

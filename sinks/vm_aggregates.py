"""Window aggregates read by their series' shape into ``/api/v1/import`` lines.

The lines are those of :func:`sinks.vm_series.aggregate_lines`, byte for
byte, without a dict per line: a line is its series name's part (shared by
every series of the metric and window size), the series' labels' part
(encoded once per series, :func:`line_parts`, the
:class:`~sinks.aggregate_reader.AggregateReader`'s ``derive``), its value
(a batch's values are formatted by one ``orjson`` call) and its timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import orjson

from hoststream.sinks.aggregate_reader import AggregateSeries, AggregateValues
from hoststream.sinks.vm_series import AGGREGATE_STATS, aggregate_series_name, series_labels

__all__ = ["LineParts", "aggregate_import_lines", "line_parts"]

#: The statistics in :data:`AGGREGATE_STATS`' order: every one but the rate,
#: which is last, has a line for every aggregate.
_ORDER = tuple(AGGREGATE_STATS)
_ALWAYS = len(_ORDER) - 1

#: Per statistic, a line's start up to its series name; then the labels' part.
LineParts = tuple[tuple[bytes, ...], bytes]


@lru_cache(maxsize=65_536)
def _names(metric: str, window_size_ms: int) -> tuple[bytes, ...]:
    """Per statistic, ``{"metric":{"__name__":"<metric>:<stat>_<window>"``."""
    return tuple(
        b'{"metric":{"__name__":'
        + orjson.dumps(aggregate_series_name(metric, stat, window_size_ms))
        for stat in _ORDER
    )


def line_parts(series: AggregateSeries) -> LineParts:
    """The parts of ``series``' import lines before their value."""
    labels = series_labels(series.host, series.region, series.labels)
    # series_labels always holds instance and job: the object is never empty.
    encoded = b"," + orjson.dumps(labels)[1:-1] + b'},"values":['
    return _names(series.metric, series.window_size_ms), encoded


def aggregate_import_lines(records: Sequence[AggregateValues]) -> list[bytes]:
    """The import lines of ``records`` (shapes derived by :func:`line_parts`), in parts."""
    if not records:
        return []
    # Every value of the batch in one orjson call, in the lines' order (count
    # as a float, as aggregate_lines writes it); numbers hold no comma.
    values: list[float] = []
    for record in records:
        values.append(float(record.sample_count))
        values += record.stats[:-1]  # not the quantile error: no series of its own
        if record.rate_per_second is not None:
            values.append(record.rate_per_second)
    formatted = orjson.dumps(values)[1:-1].split(b",")
    parts: list[bytes] = []
    tails: dict[int, bytes] = {}  # window end -> the lines' end; a batch holds few windows
    at = 0
    for record in records:
        tail = tails.get(record.window_end)
        if tail is None:
            tail = tails[record.window_end] = b'],"timestamps":[%d]}\n' % record.window_end
        lines = _ALWAYS if record.rate_per_second is None else _ALWAYS + 1
        names, labels = record.shape.derived
        values_of = formatted[at : at + lines]
        # The lines of one aggregate share their end: joined by it, then ended by it.
        # (A gauge has no rate: zip stops at its last value.)
        parts.append(
            tail.join([name + labels + v for name, v in zip(names, values_of, strict=False)])
        )
        parts.append(tail)
        at += lines
    return parts

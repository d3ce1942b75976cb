"""A Prometheus remote-write ``WriteRequest`` read back, written apart from the sink's encoder.

A generic protobuf reader (varints, length-delimited fields, 64-bit fields)
that turns a request into import-line dicts, so tests compare what a request
says with what :func:`hoststream.sinks.vm_series.event_lines` says.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

__all__ = ["by_series", "decoded"]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _fields(data: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) of each field: an int, 8 raw bytes or a payload."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, at = _varint(data, at)
        elif wire_type == 1:
            value, at = data[at : at + 8], at + 8
        elif wire_type == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
            assert at <= len(data), "a field runs past its message"
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
        yield number, value


def decoded(body: bytes) -> list[dict[str, Any]]:
    """Each ``TimeSeries`` as ``{"metric": labels, "values": [...], "timestamps": [...]}``."""
    out = []
    for number, series in _fields(body):
        assert number == 1, "a WriteRequest holds time series only"
        metric: dict[str, str] = {}
        values: list[float] = []
        timestamps: list[int] = []
        for field, payload in _fields(series):
            if field == 1:
                label = dict(_fields(payload))
                assert label[1].decode() not in metric, "a label given twice"
                metric[label[1].decode()] = label[2].decode()
            else:
                assert field == 2
                sample = dict(_fields(payload))
                values.append(struct.unpack("<d", sample[1])[0])
                timestamp = sample[2]
                timestamps.append(timestamp - (1 << 64) if timestamp >= 1 << 63 else timestamp)
        out.append({"metric": metric, "values": values, "timestamps": timestamps})
    return out


def by_series(lines: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[int]]]:
    """Import-line dicts' samples by series (a series may span lines), in time order."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for line in lines:
        key = repr(sorted(line["metric"].items()))
        series[key] += zip(line["timestamps"], line["values"], strict=True)
    return {
        key: ([v for _, v in sorted(pairs)], [t for t, _ in sorted(pairs)])
        for key, pairs in series.items()
    }

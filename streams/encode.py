"""Closed windows encoded in bulk as ``WindowAggregate`` message values.

The Avro body of a window aggregate is the series' identity (host, metric,
labels, kind), the window (size, start, end), the count, ten doubles, the
optional rate and the optional region. :class:`AggregateEncoder` writes it
straight from the columns
of :class:`~streams.aggregator.ClosedWindows`: the identity's bytes are
encoded once per series, the window's once per window, and the doubles of
all rows in one NumPy call. The wire-format header (schema id or
fingerprint) is taken from the configured serializer: for each topic the
first record is encoded both ways, and the header is what the serializer
puts before our body. Should the two bodies ever differ (a schema this
module does not know), that topic's records go through the serializer.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterator, Mapping

import numpy as np

from hoststream.schemas import RecordSerializer
from hoststream.schemas.records import MetricKind, WindowAggregate
from hoststream.streams.aggregator import ClosedWindows
from hoststream.streams.state import SeriesKey

__all__ = ["AggregateEncoder", "EncodedAggregate"]

log = logging.getLogger(__name__)

#: (window size ms, message key, message value)
EncodedAggregate = tuple[int, bytes, bytes]

_KINDS = {MetricKind.GAUGE: b"\x00", MetricKind.COUNTER: b"\x02"}
_DOUBLE = struct.Struct("<d")
_NULL = b"\x00"
_SOME = b"\x02"
_DOUBLES = 10  # sum min max mean last p50 p90 p95 p99 quantile_relative_error
_MAX_IDENTITIES = 1_000_000


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return _long(len(raw)) + raw


def _identity(host: str, metric: str, labels: Mapping[str, str], kind: MetricKind) -> bytes:
    return _string(host) + _series_identity(metric, labels, kind)


def _series_identity(metric: str, labels: Mapping[str, str], kind: MetricKind) -> bytes:
    """The identity after the host: metric, labels and kind."""
    parts = [_string(metric)]
    if labels:
        parts.append(_long(len(labels)))
        for name, value in labels.items():
            parts += [_string(name), _string(value)]
    parts += [b"\x00", _KINDS[kind]]
    return b"".join(parts)


def _window(size: int, start: int) -> bytes:
    return _long(size) + _long(start) + _long(start + size)


def _region(region: str | None) -> bytes:
    return _NULL if region is None else _SOME + _string(region)


def body(aggregate: WindowAggregate) -> bytes:
    """The Avro body of one record, as :class:`AggregateEncoder` writes it."""
    a = aggregate
    doubles = (a.sum, a.min, a.max, a.mean, a.last, a.p50, a.p90, a.p95, a.p99)
    rate = a.rate_per_second
    return b"".join(
        [
            _identity(a.host, a.metric, a.labels, a.kind),
            _window(a.window_size_ms, a.window_start),
            _long(a.count),
            struct.pack("<10d", *doubles, a.quantile_relative_error),
            _NULL if rate is None else _SOME + _DOUBLE.pack(rate),
            _region(a.region),
        ]
    )


class AggregateEncoder:
    """Encodes closed windows into message values for ``metrics.agg.<window>``."""

    def __init__(
        self,
        serializer: RecordSerializer[WindowAggregate],
        topics: Mapping[int, str],
    ) -> None:
        """
        Args:
            serializer: the WindowAggregate serializer of the configured wire format.
            topics: the topic of each window size (ms).
        """
        self._serializer = serializer
        self._topics = dict(topics)
        # topic -> wire-format header, or None where the serializer must do it all
        self._headers: dict[str, bytes | None] = {}
        # Counts repeat (samples per window): their varints, encoded once.
        self._counts = {n: _long(n) for n in range(1, 4096)}
        # Each distinct series' identity after the host, shared by every host
        # that has the series (one copy per host cost more than its samples).
        self._identities: dict[tuple[SeriesKey, MetricKind], bytes] = {}

    def _header(self, aggregate: WindowAggregate) -> bytes | None:
        topic = self._topics[aggregate.window_size_ms]
        if topic not in self._headers:
            from confluent_kafka.serialization import MessageField, SerializationContext

            theirs = self._serializer(aggregate, SerializationContext(topic, MessageField.VALUE))
            ours = body(aggregate)
            if theirs.endswith(ours):
                self._headers[topic] = theirs[: len(theirs) - len(ours)]
            else:
                log.warning(
                    "window aggregates for %s are encoded one by one: the serializer's"
                    " schema differs from the one the bulk encoder writes",
                    topic,
                )
                self._headers[topic] = None
        return self._headers[topic]

    def _one(self, aggregate: WindowAggregate) -> bytes:
        header = self._header(aggregate)
        if header is not None:
            return header + body(aggregate)
        from confluent_kafka.serialization import MessageField, SerializationContext

        topic = self._topics[aggregate.window_size_ms]
        return self._serializer(aggregate, SerializationContext(topic, MessageField.VALUE))

    def encode(self, closed: ClosedWindows) -> list[EncodedAggregate]:
        """Every window of ``closed`` as (size, key, value), in row order."""
        return list(self.each(closed))

    def each(self, closed: ClosedWindows) -> Iterator[EncodedAggregate]:
        """As :meth:`encode`, one message at a time.

        A batch of 2,000 hosts closes hundreds of thousands of windows at once:
        handed on as they are encoded, their values are never all held at the
        same time (a list of them was a tenth of the worker's peak memory).
        """
        n = len(closed.state)
        return self._rows(closed, n) if n else iter(())

    def _rows(self, closed: ClosedWindows, n: int) -> Iterator[EncodedAggregate]:
        # The header of each topic, learnt from the first row of that size.
        headers: dict[int, bytes | None] = {}
        sizes = closed.size_ms.tolist()
        for i, size in enumerate(sizes):
            if size not in headers:
                headers[size] = self._header(closed.aggregate(i))
        doubles = np.empty((n, _DOUBLES), dtype="<f8")
        doubles[:, :9] = closed.stats
        doubles[:, 9] = closed.quantile_error
        raw = doubles.tobytes()
        rates = closed.rate.tolist()
        counts = closed.count.tolist()
        starts = closed.start.tolist()
        owners = closed.state.tolist()
        series = closed.series.tolist()
        states = closed.states
        hosts = [s.host.encode() for s in states]
        host_parts = [_string(s.host) for s in states]
        identities = self._identities
        if len(identities) > _MAX_IDENTITIES:
            identities.clear()
        windows: dict[tuple[int, int], bytes] = {}
        counts_encoded = self._counts
        region = _region(closed.region)
        width = 8 * _DOUBLES
        for i in range(n):
            size = sizes[i]
            header = headers[size]
            if header is None:
                yield size, hosts[owners[i]], self._one(closed.aggregate(i))
                continue
            owner = owners[i]
            index = series[i]
            state = states[owner]
            series_kind = (state.series[index], state.kinds[index])
            identity = identities.get(series_kind)
            if identity is None:
                (metric, labels), kind = series_kind
                identity = identities[series_kind] = _series_identity(metric, dict(labels), kind)
            window = windows.get((size, starts[i]))
            if window is None:
                window = windows[(size, starts[i])] = _window(size, starts[i])
            rate = rates[i]
            yield (
                size,
                hosts[owner],
                b"".join(
                    (
                        header,
                        host_parts[owner],
                        identity,
                        window,
                        counts_encoded.get(counts[i]) or _long(counts[i]),
                        raw[i * width : (i + 1) * width],
                        _NULL if math.isnan(rate) else _SOME + _DOUBLE.pack(rate),
                        region,
                    )
                ),
            )

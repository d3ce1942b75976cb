"""Metric events decoded straight into columns: one timestamp, series, values.

A host sends the same series in the same order at every collection: between
two of its events only the timestamp, the sequence number and the 8-byte
sample values change. :class:`EventDecoder` learns that layout once (a
:class:`Template`: where each value sits in the Avro body, and the bytes
around the values) from a message that the configured deserializer has
decoded, and afterwards decodes a message of the same layout by reading its
header and checking its remaining bytes against the template with NumPy,
taking the values out as one float array. Any message that does not match
a template exactly, and any writer schema other than the one the template
was learnt from, goes through the configured deserializer, so the result is
always what that deserializer would give.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from hoststream.schemas import RecordDeserializer
from hoststream.schemas.records import MetricEvent, MetricKind
from hoststream.streams.state import Float64Array, SeriesKey, series_key, shared_series

__all__ = ["DecodedEvent", "EventDecoder", "Template"]

_KINDS = (MetricKind.GAUGE, MetricKind.COUNTER)
_DOUBLE = struct.Struct("<d")
_ids = count(1)


@dataclass(frozen=True, slots=True)
class Template:
    """The layout of an event body's samples: what is fixed and where the values are."""

    id: int
    series: tuple[tuple[SeriesKey, MetricKind], ...]
    fixed_at: npt.NDArray[np.intp]
    fixed: npt.NDArray[np.uint8]
    values_at: npt.NDArray[np.intp]


class DecodedEvent(NamedTuple):
    """One event as columns.

    ``template`` identifies the layout of the samples (None for one seen
    once), ``layout`` that of samples and host labels together (what the
    validation contract judges once). A named tuple, not a frozen
    dataclass: one is made per message, and a tuple in a fraction of the time.
    """

    host: str
    family: str
    timestamp_ms: int
    interval_ms: int
    series: tuple[tuple[SeriesKey, MetricKind], ...]
    values: Float64Array
    template: int | None
    host_labels: Mapping[str, str]
    layout: Hashable | None


class _TruncatedError(Exception):
    """The body ended inside a field: not a layout to learn."""


def _long(data: bytes, at: int) -> tuple[int, int]:
    # Avro long: zigzag varint.
    try:
        byte = data[at]
        if byte < 0x80:  # one byte: string lengths, small counts
            return (byte >> 1) ^ -(byte & 1), at + 1
        n = byte & 0x7F
        shift = 7
        at += 1
        while byte & 0x80:
            byte = data[at]
            n |= (byte & 0x7F) << shift
            shift += 7
            at += 1
    except IndexError as exc:
        raise _TruncatedError from exc
    return (n >> 1) ^ -(n & 1), at


def _string(data: bytes, at: int) -> tuple[bytes, int]:
    size, at = _long(data, at)
    end = at + size
    if size < 0 or end > len(data):
        raise _TruncatedError
    return data[at:end], end


def _string_map(data: bytes, at: int) -> tuple[dict[str, str], int]:
    out: dict[str, str] = {}
    while True:
        n, at = _long(data, at)
        if n == 0:
            return out, at
        if n < 0:
            n = -n
            _, at = _long(data, at)  # block size in bytes
        for _ in range(n):
            key, at = _string(data, at)
            value, at = _string(data, at)
            out[key.decode()] = value.decode()


def _skip_string_map(data: bytes, at: int) -> int:
    while True:
        n, at = _long(data, at)
        if n == 0:
            return at
        if n < 0:
            n = -n
            _, at = _long(data, at)  # block size in bytes
        for _ in range(2 * n):
            size, at = _long(data, at)
            at += size
            if size < 0 or at > len(data):
                raise _TruncatedError


class _Header(NamedTuple):
    host: bytes
    family: bytes
    timestamp_ms: int
    interval_ms: int
    labels_at: int  # where the host labels begin
    body: int  # where the samples begin


def _header(data: bytes, at: int, known_labels: dict[bytes, bytes] | None = None) -> _Header:
    """The header fields; ``known_labels``: each host's last host-label bytes, kept up to date."""
    host, at = _string(data, at)
    family, at = _string(data, at)
    timestamp, at = _long(data, at)
    interval, at = _long(data, at)
    _, at = _long(data, at)  # seq
    labels_at = at
    if data[at : at + 1] == b"\x00":  # no host labels
        return _Header(host, family, timestamp, interval, labels_at, at + 1)
    if known_labels is not None:
        # A host sends the same labels every time. An Avro map's encoding
        # ends itself, so bytes that begin with a known map's are that map.
        known = known_labels.get(host)
        if known is not None and data.startswith(known, at):
            return _Header(host, family, timestamp, interval, labels_at, at + len(known))
    body = _skip_string_map(data, at)
    if known_labels is not None:
        known_labels[host] = data[at:body]
    return _Header(host, family, timestamp, interval, labels_at, body)


def _layout(data: bytes, at: int) -> tuple[list[tuple[SeriesKey, MetricKind]], list[int]]:
    """Parse the samples array from ``at``, and the optional region after it (the
    end of the body): series and value offsets. The region's bytes are part of
    the template's fixed bytes, so a layout is learnt per host and region."""
    series: list[tuple[SeriesKey, MetricKind]] = []
    offsets: list[int] = []
    while True:
        n, at = _long(data, at)
        if n == 0:
            break
        if n < 0:
            n = -n
            _, at = _long(data, at)
        for _ in range(n):
            name, at = _string(data, at)
            kind, at = _long(data, at)
            if not 0 <= kind < len(_KINDS) or at + 8 > len(data):
                raise _TruncatedError
            offsets.append(at)
            at += 8
            labels, at = _string_map(data, at)
            series.append(shared_series(series_key(name.decode(), labels), _KINDS[kind]))
    if at < len(data):  # version 2 on: the region, ["null", "string"]
        branch, at = _long(data, at)
        if branch == 1:
            _, at = _string(data, at)
        elif branch != 0:
            raise _TruncatedError
    if at != len(data):
        raise _TruncatedError
    return series, offsets


def _prefix_length(data: bytes) -> int | None:
    """The wire format's header length: Confluent (5 bytes) or single-object (10 bytes)."""
    if len(data) >= 5 and data[0] == 0:
        return 5
    if len(data) >= 10 and data[0] == 0xC3 and data[1] == 0x01:
        return 10
    return None


class EventDecoder:
    """Decodes metric event values into :class:`DecodedEvent` columns (see module docstring)."""

    def __init__(
        self, decode: RecordDeserializer[MetricEvent], max_templates: int = 100_000
    ) -> None:
        """
        Args:
            decode: the MetricEvent deserializer of the configured wire format;
                the reference for every layout learnt, and the decoder of
                anything that matches none.
            max_templates: layouts kept at most; beyond, all are forgotten and learnt again.
        """
        self._decode = decode
        self._max_templates = max_templates
        # (wire-format header, family, body length after the header fields) -> layouts
        self._templates: dict[tuple[bytes, bytes, int], list[Template]] = {}
        # (host, the key above) -> the layout that host's last event had
        self._last: dict[tuple[bytes, tuple[bytes, bytes, int]], Template] = {}
        self._size = 0
        self._labels: dict[bytes, Mapping[str, str]] = {}
        # host -> the bytes of its last host labels, to skip them without parsing
        self._known_labels: dict[bytes, bytes] = {}
        self._texts: dict[bytes, str] = {}
        # Wire-format headers (writer schemas) whose bodies we do not read ourselves.
        self._foreign: set[bytes] = set()
        # Those whose bodies we have read as the deserializer did, at least once.
        self._ours: set[bytes] = set()

    def __call__(self, data: bytes | None, topic: str) -> DecodedEvent:
        """Decode one message value.

        Raises:
            SerializationError: the value is not a MetricEvent the configured
                deserializer accepts.
        """
        if data is not None:
            prefix = _prefix_length(data)
            if prefix is not None and data[:prefix] not in self._foreign:
                if len(self._known_labels) >= self._max_templates:
                    self._known_labels.clear()
                try:
                    header = _header(data, prefix, self._known_labels)
                    host_labels = self._host_labels(data, header)
                    # Host and family lie outside the bytes a template fixes:
                    # text that is no UTF-8 is left to the deserializer to refuse.
                    host, family = self._text(header.host), self._text(header.family)
                except (_TruncatedError, UnicodeDecodeError):
                    pass  # let the deserializer say what is wrong
                else:
                    key = (data[:prefix], header.family, len(data) - header.body)
                    region = np.frombuffer(data, dtype=np.uint8, offset=header.body)
                    # Hosts of one kind share a body length with different
                    # layouts; a host's own last layout is nearly always the one.
                    last = self._last.get((header.host, key))
                    candidates = self._templates.get(key, ())
                    for template in (last, *candidates) if last is not None else candidates:
                        if (region[template.fixed_at] == template.fixed).all():
                            self._last[(header.host, key)] = template
                            values = region[template.values_at].view("<f8").astype(np.float64)
                            return DecodedEvent(
                                host,
                                family,
                                header.timestamp_ms,
                                header.interval_ms,
                                template.series,
                                values,
                                template.id,
                                host_labels,
                                (template.id, data[header.labels_at : header.body]),
                            )
                    return self._learn(data, topic, key, header)
        return self._slow(data, topic)

    def _text(self, raw: bytes) -> str:
        text = self._texts.get(raw)
        if text is None:
            if len(self._texts) >= self._max_templates:
                self._texts.clear()
            text = self._texts[raw] = raw.decode()
        return text

    def _host_labels(self, data: bytes, header: _Header) -> Mapping[str, str]:
        raw = data[header.labels_at : header.body]
        labels = self._labels.get(raw)
        if labels is None:
            labels = _string_map(data, header.labels_at)[0]
            if len(self._labels) >= self._max_templates:
                self._labels.clear()
            self._labels[raw] = labels
        return labels

    def _slow(self, data: bytes | None, topic: str) -> DecodedEvent:
        from confluent_kafka.serialization import MessageField, SerializationContext

        event = self._decode(data, SerializationContext(topic, MessageField.VALUE))
        return DecodedEvent(
            event.host,
            event.family,
            event.timestamp_ms,
            event.interval_ms,
            tuple((series_key(s.name, s.labels), s.kind) for s in event.samples),
            np.fromiter(
                (float(s.value) for s in event.samples), dtype=np.float64, count=len(event.samples)
            ),
            None,
            event.host_labels,
            None,
        )

    def _learn(
        self,
        data: bytes,
        topic: str,
        key: tuple[bytes, bytes, int],
        header: _Header,
    ) -> DecodedEvent:
        decoded = self._slow(data, topic)  # raises on anything the deserializer refuses
        body = header.body
        try:
            series, offsets = _layout(data, body)
            ours = (
                header.host.decode(),
                header.family.decode(),
                header.timestamp_ms,
                header.interval_ms,
                _string_map(data, header.labels_at)[0],
            )
        except (_TruncatedError, UnicodeDecodeError):
            series, offsets, ours = [], [], ("", "", 0, 0, {})
        theirs = (
            decoded.host,
            decoded.family,
            decoded.timestamp_ms,
            decoded.interval_ms,
            dict(decoded.host_labels),
        )
        if ours != theirs or not _agrees(decoded, data, series, offsets):
            # A writer schema read otherwise from its first message on is another
            # schema: its messages are left to the deserializer. One whose bodies
            # were read alike before is ours, and this message is odd: bytes
            # the deserializer takes in a form the layout reader does not.
            if key[0] not in self._ours:
                self._foreign.add(key[0])
            return decoded
        self._ours.add(key[0])
        length = len(data) - body
        values_at = (np.asarray(offsets, dtype=np.intp)[:, None] - body + np.arange(8)).ravel()
        fixed = np.ones(length, dtype=bool)
        fixed[values_at] = False
        fixed_at = np.flatnonzero(fixed)
        template = Template(
            next(_ids),
            tuple(series),
            fixed_at,
            np.frombuffer(data, dtype=np.uint8, offset=body)[fixed_at].copy(),
            values_at,
        )
        if self._size >= self._max_templates:
            self._templates.clear()
            self._last.clear()
            self._size = 0
        self._templates.setdefault(key, []).append(template)
        self._size += 1
        return DecodedEvent(
            decoded.host,
            decoded.family,
            decoded.timestamp_ms,
            decoded.interval_ms,
            template.series,
            decoded.values,
            template.id,
            decoded.host_labels,
            (template.id, data[header.labels_at : body]),
        )


def _agrees(
    decoded: DecodedEvent,
    data: bytes,
    series: Sequence[tuple[SeriesKey, MetricKind]],
    offsets: Sequence[int],
) -> bool:
    """Whether our reading of the layout gives what the deserializer gave."""
    if tuple(series) != decoded.series or len(offsets) != len(decoded.values):
        return False
    ours = [_DOUBLE.unpack_from(data, at)[0] for at in offsets]
    return np.array_equal(
        np.asarray(ours, dtype=np.float64).view(np.int64), decoded.values.view(np.int64)
    )

"""The fixed parts of a MetricEvent's Avro body, written straight from the event.

Learning an event's layout by encoding it with fastavro and reading the
bytes back (:func:`~schemas._layout.event_layout`) costs about half a
millisecond per event: a simulated fleet's first tick learns thousands.
Under the current schema the body is host, family, the instant, the
interval and the sequence number, then the host labels, the samples (name,
kind, value, labels) and the optional region, so the bytes around the values
follow from the event alone. :class:`~schemas._layout.MetricEventBodies`
still checks its first event of each family against fastavro's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

from hoststream.schemas._varint import zigzag
from hoststream.schemas.records import MetricEvent

__all__ = ["fixed_parts"]

# The MetricKind enum's symbols in the schema's order: GAUGE, COUNTER.
_KINDS = {"GAUGE": zigzag(0), "COUNTER": zigzag(1)}
_END = zigzag(0)  # an empty map or array, or the end of a block's items
_NULL = zigzag(0)  # the union's first branch
_STRING_BRANCH = zigzag(1)


# A fleet's events repeat the same names, labels and label sets: each is encoded once.
_MAX_CACHED = 100_000
_strings: dict[str, bytes] = {}
_maps: dict[tuple[tuple[str, str], ...], bytes] = {}


def _string(text: str) -> bytes:
    encoded = _strings.get(text)
    if encoded is None:
        if len(_strings) >= _MAX_CACHED:
            _strings.clear()
        data = text.encode()
        encoded = _strings[text] = zigzag(len(data)) + data
    return encoded


def _string_map(items: Mapping[str, str]) -> bytes:
    """A map of strings as fastavro writes it: one block of every item, then the end."""
    if not items:
        return _END
    key = tuple(items.items())
    encoded = _maps.get(key)
    if encoded is None:
        if len(_maps) >= _MAX_CACHED:
            _maps.clear()
        parts = [zigzag(len(items))]
        for name, value in key:
            parts.append(_string(name))
            parts.append(_string(value))
        parts.append(_END)
        encoded = _maps[key] = b"".join(parts)
    return encoded


def fixed_parts(event: MetricEvent) -> tuple[bytes, tuple[bytes, ...]]:
    """(head, chunks) of ``event``'s body: host and family, and the bytes around its values.

    The body is ``head``, the instant, interval and sequence number as Avro
    longs, then ``chunks[0]``, a value, ``chunks[1]``, ... a value, ``chunks[-1]``.

    Raises:
        TypeError, AttributeError, KeyError: a field of the wrong type (fastavro
            reports those when it encodes).
    """
    head = _string(event.host) + _string(event.family)
    chunks: list[bytes] = []
    current = [_string_map(event.host_labels)]
    samples = event.samples
    if samples:
        current.append(zigzag(len(samples)))
        for sample in samples:
            current.append(_string(sample.name))
            current.append(_KINDS[sample.kind.value])
            chunks.append(b"".join(current))
            current = [_string_map(sample.labels)]
        current.append(_END)
    else:
        current.append(_END)
    current.append(_NULL if event.region is None else _STRING_BRANCH + _string(event.region))
    chunks.append(b"".join(current))
    return head, tuple(chunks)

"""A batch of metric events written into one buffer laid out once: the simulated fleet's path.

A source that sends the same events every tick (an :class:`EventBatch` with
the same templates) sends the same bytes every tick but for the instant, the
sequence numbers and the 8-byte values, which Avro writes as fixed-size
little-endian doubles. :class:`BatchImage` lays out every message of the
batch (wire-format prefix and Avro body) once, one after the other in one
buffer, and each tick writes only what changed with a few NumPy scatters,
instead of a ``struct`` call and a join per event. Only the simulated fleet
imports this module (and NumPy): the real-host agent never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hoststream.schemas._varint import zigzag
from hoststream.schemas.records import EventBatch

__all__ = ["BatchImage"]


def _varint_lengths(zigzagged: Any) -> Any:
    """Bytes of each (zig-zagged, so not negative) varint of a uint64 array."""
    lengths = np.ones(len(zigzagged), dtype=np.intp)
    for shift in range(7, 64, 7):
        lengths += zigzagged >= np.uint64(1 << shift)
    return lengths


class BatchImage:
    """The messages of a batch, laid out in one buffer that each tick rewrites in place.

    Args:
        prefixes: per event, its wire-format header (the Confluent magic byte
            and schema id of its topic, or the single-object marker and fingerprint).
        heads: per event, its host and family as Avro writes them.
        chunks: per event, the fixed bytes around its values (host labels,
            sample names, kinds, labels, region): one more than its values.
        intervals: per event, its ``interval_ms``.
    """

    __slots__ = (
        "_chunks",
        "_heads",
        "_image",
        "_instant_at",
        "_intervals",
        "_prefixes",
        "_seq_at",
        "_seq_lengths",
        "_timestamp",
        "_timestamp_length",
        "_u8",
        "_value_at",
        "ends",
        "starts",
        "value_ends",
    )

    def __init__(
        self,
        prefixes: Sequence[bytes],
        heads: Sequence[bytes],
        chunks: Sequence[Sequence[bytes]],
        intervals: Sequence[int],
    ) -> None:
        if not len(prefixes) == len(heads) == len(chunks) == len(intervals):
            raise ValueError("one prefix, head, chunk list and interval per event")
        self._prefixes = list(prefixes)
        self._heads = list(heads)
        self._chunks = [tuple(c) for c in chunks]
        self._intervals = list(intervals)
        #: Per event, where its values end in the batch's values.
        self.value_ends: list[int] = []
        total = 0
        for event_chunks in self._chunks:
            total += len(event_chunks) - 1
            self.value_ends.append(total)
        #: Per event, where its message starts and ends in :attr:`view`.
        self.starts: list[int] = []
        self.ends: list[int] = []
        self._image = bytearray()
        self._timestamp = -1
        self._timestamp_length = 0
        self._u8: Any = None
        #: Per byte offset modulo 8: (which values, where among the doubles, the doubles).
        self._value_at: list[tuple[Any, Any, Any]] = []
        self._instant_at: Any = None
        self._seq_at: Any = None
        self._seq_lengths: Any = None

    def write(self, batch: EventBatch) -> bytes:
        """Write ``batch``'s instant, sequence numbers and values; return the buffer.

        The messages are ``buffer[starts[i]:ends[i]]``. (A copy as ``bytes``:
        confluent-kafka takes no other buffer for a value.)

        Raises:
            ValueError: ``batch`` does not have this image's events (its values do not fit).
        """
        if len(batch.templates) != len(self._heads) or len(batch.values) != (
            self.value_ends[-1] if self.value_ends else 0
        ):
            raise ValueError("the batch does not have this image's events")
        values = np.ascontiguousarray(batch.values, dtype="<f8")
        seqs = np.asarray(batch.seqs, dtype=np.int64)
        zigzagged = ((seqs << 1) ^ (seqs >> 63)).view(np.uint64)
        lengths = _varint_lengths(zigzagged)
        timestamp = zigzag(batch.timestamp_ms)
        if (
            self._u8 is None
            or len(timestamp) != self._timestamp_length
            or not np.array_equal(lengths, self._seq_lengths)
        ):
            self._lay_out(batch.timestamp_ms, [int(s) for s in batch.seqs])
        u8 = self._u8
        if batch.timestamp_ms != self._timestamp:
            u8[self._instant_at] = np.tile(np.frombuffer(timestamp, np.uint8), len(self._heads))
            self._timestamp = batch.timestamp_ms
        seq_lengths = self._seq_lengths
        for k in range(int(seq_lengths.max(initial=0))):
            more = seq_lengths > k + 1
            byte = ((zigzagged >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
            byte |= more.astype(np.uint8) << np.uint8(7)
            present = seq_lengths > k
            u8[self._seq_at[present] + k] = byte[present]
        for taken, at, doubles in self._value_at:
            doubles[at] = values[taken]
        return bytes(self._image)

    def _lay_out(self, timestamp_ms: int, seqs: list[int]) -> None:
        """Lay every message out anew: the first tick, or a varint grew a byte."""
        image = bytearray()
        value_at: list[int] = []
        instant_at: list[int] = []
        seq_at: list[int] = []
        seq_lengths: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        timestamp = zigzag(timestamp_ms)
        gap = bytes(8)
        for prefix, head, chunks, interval, seq in zip(
            self._prefixes, self._heads, self._chunks, self._intervals, seqs, strict=True
        ):
            starts.append(len(image))
            image += prefix
            image += head
            instant_at.append(len(image))
            image += timestamp
            image += zigzag(interval)
            seq_at.append(len(image))
            seq_bytes = zigzag(seq)
            seq_lengths.append(len(seq_bytes))
            image += seq_bytes
            image += chunks[0]
            for chunk in chunks[1:]:
                value_at.append(len(image))
                image += gap
                image += chunk
            ends.append(len(image))
        self._image = image
        self._u8 = np.frombuffer(image, dtype=np.uint8)
        self.starts, self.ends = starts, ends
        # A value lies at any byte offset: seen as doubles from each of the 8
        # offsets (unaligned views), each value is one element of one of them,
        # so writing them all is 8 scatters of doubles rather than one of bytes.
        at = np.asarray(value_at, dtype=np.intp)
        self._value_at = []
        for residue in range(8):
            taken = np.flatnonzero(at % 8 == residue)
            if len(taken):
                doubles = np.frombuffer(
                    image, dtype="<f8", offset=residue, count=(len(image) - residue) // 8
                )
                self._value_at.append((taken, (at[taken] - residue) // 8, doubles))
        self._instant_at = (
            np.asarray(instant_at, dtype=np.intp)[:, None] + np.arange(len(timestamp))
        ).ravel()
        self._seq_at = np.asarray(seq_at, dtype=np.intp)
        self._seq_lengths = np.asarray(seq_lengths, dtype=np.intp)
        self._timestamp = timestamp_ms
        self._timestamp_length = len(timestamp)

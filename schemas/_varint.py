"""Avro's ``long`` encoding, for the modules that write Avro bodies by layout.

A module of its own so the batch writer (:mod:`schemas._batch`) and the
event-body writer (:mod:`schemas._layout`) share it without importing each other.
"""

from __future__ import annotations

__all__ = ["zigzag"]


def zigzag(n: int) -> bytes:
    """An Avro ``long``: zig-zag, then base-128 varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)

"""Writer schemas for reading whose enums refuse a negative index.

Avro writes an enum as the zig-zag ``int`` index of its symbol. fastavro
looks the symbol up as ``symbols[index]`` without checking the sign, so a
corrupt index of -2 reads as the symbol second from the end: a ``kind``
byte flipped from 2 (``COUNTER``, index 1) to 3 (index -2) would turn a
counter into a gauge instead of being refused, and the message would be
aggregated as a gauge rather than dead-lettered.

The schema handed to fastavro's reader therefore carries each enum's
symbols as :class:`EnumSymbols`, which refuses a negative index with an
``IndexError`` (what fastavro raises for an index past the end). It has no
``__len__`` on purpose: given a sequence with a length, compiled readers
add the length to a negative index before looking it up, as Python's
sequence protocol does, and the check would never see it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EnumSymbols", "strict_enums"]


class EnumSymbols:
    """An enum's symbols, looked up by non-negative index only."""

    __slots__ = ("_symbols",)

    def __init__(self, symbols: list[str] | tuple[str, ...]) -> None:
        self._symbols = tuple(symbols)

    def __getitem__(self, index: int) -> str:
        if index < 0:
            raise IndexError(f"enum index {index} is negative")
        return self._symbols[index]

    def __repr__(self) -> str:
        return f"EnumSymbols({list(self._symbols)!r})"


def strict_enums(parsed: Any) -> Any:
    """A copy of the fastavro-parsed schema ``parsed`` with every enum's symbols
    an :class:`EnumSymbols`; for reading only (writers look symbols up by value)."""
    if isinstance(parsed, list):  # a union
        return [strict_enums(branch) for branch in parsed]
    if not isinstance(parsed, dict):
        return parsed  # a primitive or a named type's reference
    copied = {key: strict_enums(value) for key, value in parsed.items()}
    if parsed.get("type") == "enum":
        copied["symbols"] = EnumSymbols(parsed["symbols"])
    return copied

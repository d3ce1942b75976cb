"""Tumbling event-time windows: their sizes, names and boundaries."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from hoststream.errors import ConfigurationError

__all__ = ["DEFAULT_WINDOWS", "WindowSize", "parse_windows"]

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SPEC = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")


@dataclass(frozen=True, slots=True, order=True)
class WindowSize:
    """The length of a tumbling window, aligned to the Unix epoch.

    Args:
        ms: length in milliseconds; positive.
    """

    ms: int

    def __post_init__(self) -> None:
        if self.ms <= 0:
            raise ValueError(f"a window must be longer than 0 ms, got {self.ms}")

    @classmethod
    def parse(cls, text: str) -> WindowSize:
        """``"10s"``, ``"1m"``, ``"5m"``, ``"1h"``, ``"500ms"``; a bare number is seconds."""
        match = _SPEC.match(text)
        if match is None:
            raise ValueError(f"not a window size: {text!r} (expected e.g. 10s, 1m, 5m, 1h)")
        number, unit = match.groups()
        return cls(int(number) * _UNITS_MS[unit or "s"])

    @property
    def label(self) -> str:
        """The shortest exact name: ``10s``, ``1m``, ``5m``, ``1h``; used in topic names."""
        for unit in ("d", "h", "m", "s"):
            size = _UNITS_MS[unit]
            if self.ms % size == 0:
                return f"{self.ms // size}{unit}"
        return f"{self.ms}ms"

    def start_of(self, timestamp_ms: int) -> int:
        """Start of the window holding ``timestamp_ms`` (floor, also before 1970)."""
        return timestamp_ms - timestamp_ms % self.ms

    def __str__(self) -> str:
        return self.label


#: One-minute and five-minute windows, the sizes dashboards and alert rules use.
DEFAULT_WINDOWS = (WindowSize(60_000), WindowSize(300_000))


def parse_windows(
    specs: Iterable[str | WindowSize], setting: str = "windows"
) -> tuple[WindowSize, ...]:
    """Window sizes from their names, sorted and checked to roll up from the smallest.

    Every size must be a multiple of the smallest one, because larger windows
    are built by merging closed windows of the smallest size.

    Raises:
        ConfigurationError: a name is invalid, none is given, or a size is not
            a multiple of the smallest; the error names ``setting``.
    """
    sizes: set[WindowSize] = set()
    for spec in specs:
        try:
            sizes.add(spec if isinstance(spec, WindowSize) else WindowSize.parse(spec))
        except ValueError as exc:
            raise ConfigurationError(setting, str(exc)) from exc
    if not sizes:
        raise ConfigurationError(setting, "at least one window size is needed")
    ordered = tuple(sorted(sizes))
    base = ordered[0]
    for size in ordered[1:]:
        if size.ms % base.ms:
            raise ConfigurationError(
                setting, f"{size.label} is not a multiple of the smallest window {base.label}"
            )
    return ordered

"""The collector contract and the include/exclude filters collectors share."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Protocol

from hoststream.errors import ConfigurationError
from hoststream.schemas.records import Sample

__all__ = ["Collector", "FamilyCollector", "NameFilter", "Part", "compile_pattern"]

log = logging.getLogger(__name__)


class Collector(Protocol):
    """Collects one metric family of one host.

    ``collect()`` reads its source once and returns the family's samples at
    that instant; it keeps no state between calls, so counters are sent raw
    and consumers compute rates.
    """

    @property
    def family(self) -> str: ...

    def collect(self) -> list[Sample]: ...


class Part(Protocol):
    """One of node_exporter's collectors inside a family: ``collect()`` returns its samples."""

    def collect(self) -> list[Sample]: ...


class FamilyCollector:
    """A family made of parts (node_exporter collectors), read in order.

    A part that fails is left out of that collection and the others still
    report, as node_exporter reports a failed collector and serves the rest;
    its first failure is logged with the traceback, later ones at debug level.

    Args:
        family: the family (and topic) name.
        parts: what to read, in order.
    """

    def __init__(self, family: str, parts: Sequence[Part]) -> None:
        self.family = family
        self.parts = tuple(parts)
        self._failed: set[int] = set()

    def collect(self) -> list[Sample]:
        samples: list[Sample] = []
        for index, part in enumerate(self.parts):
            try:
                samples += part.collect()
            except Exception:  # one unreadable file must not cost the family
                if index in self._failed:
                    log.debug("%s: %r failed again", self.family, part, exc_info=True)
                else:
                    self._failed.add(index)
                    log.exception("%s: %r failed; its series are left out", self.family, part)
        return samples

    def __repr__(self) -> str:
        return f"FamilyCollector({self.family!r}, {[type(p).__name__ for p in self.parts]})"


def compile_pattern(parameter: str, pattern: str | None) -> re.Pattern[str] | None:
    """Compile a filter regex, naming the parameter when it is not valid."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(
            parameter, f"{pattern!r} is not a valid regular expression ({exc})"
        ) from exc


class NameFilter:
    """node_exporter's device filter: an exclude regex or an include regex, not both.

    Patterns are matched anywhere in the name (Go's ``MatchString``, i.e.
    :meth:`re.Pattern.search`), so anchor them with ``^...$`` to match whole
    names, as node_exporter's defaults do.

    Args:
        exclude: names matching it are left out.
        include: when given, only names matching it are kept.
        exclude_parameter, include_parameter: the names used in error messages.
    """

    def __init__(
        self,
        exclude: str | None = None,
        include: str | None = None,
        *,
        exclude_parameter: str = "exclude",
        include_parameter: str = "include",
    ) -> None:
        if exclude is not None and include is not None:
            raise ConfigurationError(
                include_parameter,
                f"cannot be combined with {exclude_parameter}; give only one of them",
            )
        self._exclude = compile_pattern(exclude_parameter, exclude)
        self._include = compile_pattern(include_parameter, include)

    def __call__(self, name: str) -> bool:
        """Whether ``name`` is kept."""
        if self._exclude is not None and self._exclude.search(name):
            return False
        return self._include is None or self._include.search(name) is not None

    def __repr__(self) -> str:
        exclude = self._exclude.pattern if self._exclude else None
        include = self._include.pattern if self._include else None
        return f"NameFilter(exclude={exclude!r}, include={include!r})"

"""Reading rule files: YAML in, a :class:`~streams.rules.model.RuleSet` out, or where it is wrong.

The YAML is read with a loader that remembers the line of every mapping key
and list item, so a validation error found by pydantic (which knows only the
path, e.g. ``rules.2.threshold``) is reported at its line in the file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hoststream.errors import RuleFileError
from hoststream.streams.rules.model import RuleSet

__all__ = ["DEFAULT_RULES", "load_rules", "parse_rules"]

#: The rule set shipped with hoststream (``streams/rules/default.yaml``).
DEFAULT_RULES = "default.yaml"


class _LineDict(dict[Any, Any]):
    line: int
    key_lines: dict[Any, int]


class _LineList(list[Any]):
    line: int
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """SafeLoader that records lines (1-based) and refuses duplicate keys."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            raise RuleFileError("", line, f"duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> _LineList:
    result = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def _line_of(data: Any, loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest element of ``loc`` that exists in ``data``."""
    line: int | None = getattr(data, "line", None)
    node = data
    for part in loc:
        if isinstance(node, _LineDict) and part in node:
            line, node = node.key_lines[part], node[part]
        elif isinstance(node, _LineList) and isinstance(part, int) and 0 <= part < len(node):
            line, node = node.item_lines[part], node[part]
        else:
            break
    return line


def _describe(loc: tuple[int | str, ...]) -> str:
    # Pydantic puts the failing Literal or union member last; the reader wants the field.
    return ".".join(
        str(p) for p in loc if not (isinstance(p, str) and p.startswith(("literal[", "function-")))
    )


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate rule-file text.

    Raises:
        RuleFileError: with ``source``, the line and the reason.
    """
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  # _Loader is a SafeLoader
    except RuleFileError as exc:
        raise RuleFileError(source, exc.line, exc.reason) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise RuleFileError(
            source, line, f"not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from exc
    if data is None:
        data = {"rules": []}
    if not isinstance(data, dict):
        raise RuleFileError(source, 1, "expected a mapping with a 'rules' list")
    rules = data.get("rules")
    if isinstance(rules, _LineList):
        seen: dict[str, int] = {}
        for item, line in zip(rules, rules.item_lines, strict=True):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name in seen:
                raise RuleFileError(
                    source, line, f"rule {name!r} is defined twice (first at line {seen[name]})"
                )
            if isinstance(name, str):
                seen[name] = line
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        where = _describe(loc[2:] if loc[:1] == ("rules",) and len(loc) > 1 else loc)
        if loc[:1] == ("rules",) and len(loc) > 1 and isinstance(loc[1], int):
            rule = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
            name = rule.get("name") if isinstance(rule, dict) else None
            where = f"rule {name!r}" + (f": {where}" if where else "") if name else where
        reason = f"{where}: {error['msg']}" if where else str(error["msg"])
        raise RuleFileError(source, _line_of(data, loc), reason) from None


def load_rules(path: Path | str | None = None) -> RuleSet:
    """Read a rule file; None reads the default rule set shipped in this package.

    Raises:
        RuleFileError: the file cannot be read or is invalid; says where and why.
    """
    if path is None:
        text = (
            resources.files("hoststream.streams.rules").joinpath(DEFAULT_RULES).read_text("utf-8")
        )
        return parse_rules(text, f"streams/rules/{DEFAULT_RULES}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(str(path), None, f"cannot read: {exc.strerror}") from exc
    return parse_rules(text, str(path))

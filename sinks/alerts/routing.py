"""Which receivers an alert goes to: the routing file, read and checked at start.

The file is YAML (see ``default_routes.yaml`` and docs/alerting.md)::

    routes:                       # tried in order
      - name: page-the-db-team    # optional, shown in logs
        match: {severity: critical}          # label equality
        match_re: {team: "db|storage"}       # label regex, anchored at both ends
        receivers: [pagerduty, alertmanager]
        continue: true            # also try the routes below (default: false)
    default:                      # when no route matched
      receivers: [alertmanager]

A route matches when every ``match`` and ``match_re`` condition holds; as in
Alertmanager a missing label has the value ``""``. The labels matched are the
alert's labels plus ``alertname`` (the rule), ``severity``, ``host``,
``instance`` (the host) and ``metric``. A route without conditions matches
every alert. Any mistake stops the sink at start with the file, the line and
the reason: an alert routed by a half-understood file is an alert lost.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hoststream.errors import RoutingFileError
from hoststream.schemas import AlertEvent

__all__ = [
    "DEFAULT_ROUTES_FILE",
    "Route",
    "RoutingTable",
    "load_routes",
    "parse_routes",
    "routing_labels",
]

#: The routing used when ``HOSTSTREAM_ALERT_ROUTES_FILE`` is not set.
DEFAULT_ROUTES_FILE = Path(__file__).with_name("default_routes.yaml")

_ROUTE_KEYS = frozenset({"name", "match", "match_re", "receivers", "continue"})
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRUE = frozenset({"true", "True", "TRUE", "yes", "Yes", "on"})
_FALSE = frozenset({"false", "False", "FALSE", "no", "No", "off"})


def routing_labels(alert: AlertEvent) -> dict[str, str]:
    """The labels routes match on: the alert's labels and its identifying fields."""
    return {
        **alert.labels,
        "alertname": alert.rule,
        "severity": alert.severity,
        "host": alert.host,
        "instance": alert.host,
        "metric": alert.metric,
    }


@dataclass(frozen=True)
class Route:
    """One entry of ``routes``: conditions, receivers, and whether to go on."""

    receivers: tuple[str, ...]
    match: Mapping[str, str] = field(default_factory=dict)
    match_re: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    continue_: bool = False
    name: str = ""
    line: int = 0

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k, "") == v for k, v in self.match.items()) and all(
            p.fullmatch(labels.get(k, "")) is not None for k, p in self.match_re.items()
        )


@dataclass(frozen=True)
class RoutingTable:
    """The routes in file order and the default receivers."""

    routes: tuple[Route, ...]
    default: tuple[str, ...]

    def receivers_for(self, alert: AlertEvent) -> tuple[str, ...]:
        """Every receiver ``alert`` goes to, each once, in the order the file names them."""
        labels = routing_labels(alert)
        chosen: list[str] = []
        matched = False
        for route in self.routes:
            if not route.matches(labels):
                continue
            matched = True
            chosen.extend(r for r in route.receivers if r not in chosen)
            if not route.continue_:
                break
        return tuple(chosen) if matched else self.default

    @property
    def receivers(self) -> frozenset[str]:
        """Every receiver some alert can go to."""
        return frozenset(self.default).union(*(r.receivers for r in self.routes))


def load_routes(
    path: Path,
    *,
    available: Collection[str],
    unavailable: Mapping[str, str] | None = None,
    strict: bool = True,
) -> RoutingTable:
    """Read and check a routing file.

    Args:
        path: the YAML file.
        available: the receivers that are configured and may be named.
        unavailable: receivers that exist but are not configured -> what
            configures them (e.g. ``HOSTSTREAM_PAGERDUTY_ROUTING_KEY``).
        strict: True refuses a file that names an unavailable receiver; False
            (for the built-in default file) leaves such receivers out, and an
            empty default route falls back to every available receiver.

    Raises:
        RoutingFileError: with the file, the line and the reason.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutingFileError(str(path), None, f"cannot read it: {exc.strerror}") from exc
    return parse_routes(
        text, str(path), available=available, unavailable=unavailable, strict=strict
    )


def parse_routes(
    text: str,
    source: str,
    *,
    available: Collection[str],
    unavailable: Mapping[str, str] | None = None,
    strict: bool = True,
) -> RoutingTable:
    """:func:`load_routes` for text in hand; ``source`` names it in errors."""
    return _Parser(source, available, unavailable or {}, strict).parse(text)


class _Parser:
    """Walks the YAML node tree, so every error can name the line it is about."""

    def __init__(
        self, source: str, available: Collection[str], unavailable: Mapping[str, str], strict: bool
    ) -> None:
        self.source = source
        self.available = list(available)
        self.unavailable = unavailable
        self.strict = strict

    def fail(self, node: Node | None, reason: str) -> RoutingFileError:
        line = node.start_mark.line + 1 if node is not None else None
        return RoutingFileError(self.source, line, reason)

    def parse(self, text: str) -> RoutingTable:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
            raise RoutingFileError(self.source, line, f"not valid YAML: {exc.problem}") from None
        except yaml.YAMLError as exc:
            raise RoutingFileError(self.source, None, f"not valid YAML: {exc}") from None
        if root is None:
            raise RoutingFileError(self.source, None, "the file is empty; it needs `default:`")
        top = self.mapping(root, "the file", {"routes", "default"})
        routes: list[Route] = []
        if "routes" in top:
            routes_node = top["routes"][1]
            if not isinstance(routes_node, SequenceNode):
                raise self.fail(routes_node, "`routes` must be a list of routes")
            for item in routes_node.value:
                route = self.route(item)
                if route is not None:
                    routes.append(route)
        if "default" not in top:
            raise self.fail(root, "`default:` is missing: say where unmatched alerts go")
        default_node = top["default"][1]
        default_keys = self.mapping(default_node, "`default`", {"receivers"})
        if "receivers" not in default_keys:
            raise self.fail(default_node, "`default` needs `receivers`")
        default = self.receivers(default_keys["receivers"][1])
        if not default:
            if self.strict:
                raise self.fail(default_node, "`default` needs at least one receiver")
            # Leniency is for the built-in file only: with its receivers left
            # out, unmatched alerts still reach whatever is configured.
            default = tuple(self.available)
        return RoutingTable(tuple(routes), default)

    def mapping(
        self, node: Node, what: str, allowed: Collection[str]
    ) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        found: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            name = self.scalar(key, "a key")
            if name not in allowed:
                raise self.fail(
                    key, f"unknown key {name!r} in {what}; expected one of {sorted(allowed)}"
                )
            if name in found:
                raise self.fail(key, f"{name!r} appears twice in {what}")
            found[name] = (key, value)
        return found

    def scalar(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.fail(node, f"{what} must be a single value")
        return str(node.value)

    def labels(self, node: Node, what: str) -> dict[str, tuple[Node, str]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"`{what}` must be a mapping of label: value")
        result: dict[str, tuple[Node, str]] = {}
        for key, value in node.value:
            name = self.scalar(key, "a label name")
            if not _LABEL_NAME.fullmatch(name):
                raise self.fail(key, f"{name!r} is not a label name ([A-Za-z_][A-Za-z0-9_]*)")
            if name in result:
                raise self.fail(key, f"label {name!r} appears twice in `{what}`")
            result[name] = (value, self.scalar(value, f"the value of {name!r}"))
        return result

    def receivers(self, node: Node) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            raise self.fail(node, "`receivers` must be a non-empty list of receiver names")
        names: list[str] = []
        for item in node.value:
            name = self.scalar(item, "a receiver name")
            if name in self.unavailable:
                if self.strict:
                    raise self.fail(
                        item,
                        f"receiver {name!r} is not configured: set {self.unavailable[name]}",
                    )
                continue
            if name not in self.available:
                known = sorted({*self.available, *self.unavailable})
                raise self.fail(item, f"unknown receiver {name!r}; known: {known}")
            if name not in names:
                names.append(name)
        return tuple(names)

    def route(self, node: Node) -> Route | None:
        keys = self.mapping(node, "a route", _ROUTE_KEYS)
        if "receivers" not in keys:
            raise self.fail(node, "a route needs `receivers`")
        match = (
            {k: v for k, (_, v) in self.labels(keys["match"][1], "match").items()}
            if "match" in keys
            else {}
        )
        match_re: dict[str, re.Pattern[str]] = {}
        if "match_re" in keys:
            for label, (value_node, pattern) in self.labels(
                keys["match_re"][1], "match_re"
            ).items():
                try:
                    match_re[label] = re.compile(pattern)
                except re.error as exc:
                    raise self.fail(
                        value_node, f"{pattern!r} is not a regular expression: {exc}"
                    ) from None
        continue_ = False
        if "continue" in keys:
            value = self.scalar(keys["continue"][1], "`continue`")
            if value not in _TRUE | _FALSE:
                raise self.fail(
                    keys["continue"][1], f"`continue` must be true or false, not {value!r}"
                )
            continue_ = value in _TRUE
        name = self.scalar(keys["name"][1], "`name`") if "name" in keys else ""
        receivers = self.receivers(keys["receivers"][1])
        if not receivers:
            return None  # every receiver left out (lenient mode only)
        return Route(receivers, match, match_re, continue_, name, node.start_mark.line + 1)

"""Every Kafka name hoststream uses: topics, their patterns, consumer groups.

The one place these names are spelled. Every name carries the configured
``HOSTSTREAM_TOPIC_PREFIX`` (:func:`prefixed`), so several pipelines can share
one cluster:

- ``metrics.<family>``: one topic per metric family, written by the producer;
- ``metrics.agg.<window>`` (e.g. ``metrics.agg.1m``): windowed aggregates;
- ``alerts``: alert events, firing and resolved;
- ``<source topic>.dlq``: dead letters of the source topic (never prefixed
  again: the source name carries the prefix already);
- ``_schemas``: the writer schemas (registry id -> schema) of the records this
  region's stream processor writes, compacted, so another region can decode them.

Between regions, MirrorMaker 2 copies the aggregates, the alerts and
``_schemas`` (:data:`MIRRORED_TOPIC_REGEXES`) under its default replication
policy: region ``region-a``'s ``metrics.agg.1m`` becomes
``region-a.metrics.agg.1m`` in every other region (a mirrored topic,
:func:`mirror_source`).

Patterns (``^``-prefixed, as librdkafka's subscribe takes them) match every
topic of a kind that exists or appears later, and never a ``.dlq`` topic.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hoststream.streams.windows import WindowSize

__all__ = [
    "AGGREGATE_TOPIC_PREFIX",
    "ALERTS_TOPIC",
    "DLQ_SUFFIX",
    "METRIC_TOPIC_PREFIX",
    "MIRRORED_TOPIC_REGEXES",
    "REGION_PATTERN",
    "SCHEMAS_TOPIC",
    "WINDOW_LABEL_PATTERN",
    "aggregate_topic",
    "aggregate_topic_prefix",
    "aggregate_topics_pattern",
    "alerts_topic",
    "alerts_topics_pattern",
    "dead_letter_topic",
    "metric_topic",
    "metric_topic_prefix",
    "metric_topics_pattern",
    "mirror_source",
    "prefixed",
    "schemas_topic",
    "sink_group",
]

METRIC_TOPIC_PREFIX = "metrics."
AGGREGATE_TOPIC_PREFIX = "metrics.agg."
ALERTS_TOPIC = "alerts"
DLQ_SUFFIX = ".dlq"
SCHEMAS_TOPIC = "_schemas"

#: A region's name (``HOSTSTREAM_REGION``), which is also its Kafka cluster's
#: alias in MirrorMaker 2 and so the first part of every topic mirrored from it.
REGION_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
#: What MirrorMaker 2 copies between regions (Java regexes, whole names, any
#: topic prefix): aggregates, alerts and the writer schemas. Raw metric topics
#: stay in their region; each region aggregates only its own hosts.
MIRRORED_TOPIC_REGEXES = (
    r"(.*\.)?metrics\.agg\.[0-9]+(ms|s|m|h|d)",
    r"(.*\.)?alerts",
    r"(.*\.)?_schemas",
)
# librdkafka's regex engine has no {m,n} or (?:...): a looser region part is enough
# in a subscription, whose other parts are exact.
_MIRRORED_FROM = r"([a-z0-9-]+\.)?"

#: A window's name in a topic, as :attr:`WindowSize.label` writes it: ``1m``, ``500ms``.
WINDOW_LABEL_PATTERN = r"[0-9]+(ms|s|m|h|d)"


class _Prefixed(Protocol):
    """What names are built from: :class:`hoststream.config.Settings` or anything with a prefix."""

    @property
    def topic_prefix(self) -> str: ...


def prefixed(settings: _Prefixed, name: str) -> str:
    """``name`` with the configured topic prefix: ``prod.`` + ``alerts`` -> ``prod.alerts``."""
    return f"{settings.topic_prefix}{name}"


def metric_topic_prefix(settings: _Prefixed) -> str:
    """What every ``metrics.<family>`` topic (and every aggregate topic) starts with."""
    return prefixed(settings, METRIC_TOPIC_PREFIX)


def aggregate_topic_prefix(settings: _Prefixed) -> str:
    """What every ``metrics.agg.<window>`` topic starts with."""
    return prefixed(settings, AGGREGATE_TOPIC_PREFIX)


def metric_topic(settings: _Prefixed, family: str) -> str:
    """``metrics.<family>``, with the configured prefix."""
    return prefixed(settings, f"{METRIC_TOPIC_PREFIX}{family}")


def aggregate_topic(settings: _Prefixed, size: WindowSize) -> str:
    """``metrics.agg.<window>``, e.g. ``metrics.agg.1m``, with the configured prefix."""
    return prefixed(settings, f"{AGGREGATE_TOPIC_PREFIX}{size.label}")


def alerts_topic(settings: _Prefixed) -> str:
    """``alerts``, with the configured prefix."""
    return prefixed(settings, ALERTS_TOPIC)


def dead_letter_topic(source_topic: str) -> str:
    """``<source topic>.dlq``."""
    return f"{source_topic}{DLQ_SUFFIX}"


def schemas_topic(settings: _Prefixed) -> str:
    """``_schemas``, with the configured prefix."""
    return prefixed(settings, SCHEMAS_TOPIC)


def mirror_source(topic: str) -> tuple[str, str] | None:
    """(source region, topic in that region) of a mirrored topic name, else None.

    ``region-a.metrics.agg.1m`` -> ``("region-a", "metrics.agg.1m")``. Any
    dotted name splits: callers ask only about names that are not their own.
    """
    region, sep, name = topic.partition(".")
    if not sep or not name or not re.match(REGION_PATTERN, region):
        return None
    return region, name


def metric_topics_pattern(settings: _Prefixed) -> str:
    """A regex for every ``metrics.<family>`` topic (not the aggregates, not ``.dlq``)."""
    return rf"^{re.escape(metric_topic_prefix(settings))}[a-z]+$"


def aggregate_topics_pattern(settings: _Prefixed, *, mirrored: bool = False) -> str:
    """A regex for every ``metrics.agg.<window>`` topic (not ``.dlq``).

    ``mirrored``: also those MirrorMaker 2 copied from other regions
    (``<region>.metrics.agg.<window>``).
    """
    region = _MIRRORED_FROM if mirrored else ""
    return rf"^{region}{re.escape(aggregate_topic_prefix(settings))}{WINDOW_LABEL_PATTERN}$"


def alerts_topics_pattern(settings: _Prefixed) -> str:
    """A regex for ``alerts`` and every ``<region>.alerts`` mirrored from another region."""
    return rf"^{_MIRRORED_FROM}{re.escape(alerts_topic(settings))}$"


def sink_group(settings: _Prefixed, kind: str) -> str:
    """The consumer group of a sink kind: ``<prefix>hoststream-sink-<kind>``."""
    return prefixed(settings, f"hoststream-sink-{kind}")

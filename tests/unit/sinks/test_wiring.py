"""Topic routing, default subscriptions and dead-letter topic creation."""

from __future__ import annotations

import re

import pytest

from hoststream.config import Settings
from hoststream.dead_letters import Rejection
from hoststream.errors import InvalidRecordError, SerializationError, SinkUnavailableError
from hoststream.sinks.app import default_group, default_topics
from hoststream.sinks.base import SinkRecord
from hoststream.sinks.decoding import TopicDecoder
from hoststream.sinks.dlq import DeadLetterQueue
from hoststream.topics import dead_letter_topic
from tests.support.doubles.kafka import FakeProducer


def test_the_longest_matching_prefix_decodes() -> None:
    decoder = TopicDecoder(
        {
            "metrics.": lambda data, ctx: ("event", ctx.topic),
            "metrics.agg.": lambda data, ctx: ("agg", ctx.topic),
        }
    )
    assert decoder("metrics.cpu", b"x", []) == ("event", "metrics.cpu")
    assert decoder("metrics.agg.1m", b"x", []) == ("agg", "metrics.agg.1m")
    with pytest.raises(InvalidRecordError, match="no decoder"):
        decoder("alerts", b"x", [])
    with pytest.raises(InvalidRecordError, match="tombstone"):
        decoder("metrics.cpu", None, [])


def test_a_mirrored_topic_decodes_with_its_source_regions_routes_built_once() -> None:
    built: list[str] = []

    def routes_of(region: str):
        built.append(region)
        return {"p.metrics.agg.": lambda data, ctx: (region, ctx.topic)}

    decoder = TopicDecoder({"p.metrics.agg.": lambda data, ctx: ("local", ctx.topic)}, routes_of)
    assert decoder("p.metrics.agg.1m", b"x", []) == ("local", "p.metrics.agg.1m")
    assert decoder("region-a.p.metrics.agg.1m", b"x", []) == (
        "region-a",
        "region-a.p.metrics.agg.1m",
    )
    assert decoder("region-a.p.metrics.agg.5m", b"x", [])[0] == "region-a"
    assert decoder("eu-2.p.metrics.agg.1m", b"x", [])[0] == "eu-2"
    assert built == ["region-a", "eu-2"]
    with pytest.raises(InvalidRecordError, match="no decoder"):
        decoder("region-a.p.alerts", b"x", [])
    with pytest.raises(InvalidRecordError, match="no decoder"):
        TopicDecoder({"p.metrics.agg.": lambda data, ctx: None})(
            "region-a.p.metrics.agg.1m", b"x", []
        )


def test_decoding_errors_pass_through() -> None:
    def refuse(data, ctx):
        raise SerializationError("bad bytes")

    with pytest.raises(SerializationError):
        TopicDecoder({"m": refuse})("m", b"x", [])


def full_match(patterns: list[str], topic: str) -> bool:
    return any(re.search(p, topic) if p.startswith("^") else p == topic for p in patterns)


@pytest.mark.parametrize(
    ("topic", "vm", "sql"),
    [
        ("p.metrics.cpu", True, False),
        ("p.metrics.network", True, False),
        ("p.metrics.agg.1m", True, True),
        ("p.metrics.agg.1h", True, True),
        ("p.metrics.cpu.dlq", False, False),
        ("p.metrics.agg.1m.dlq", False, False),
        ("p.alerts", False, True),
        ("metrics.cpu", False, False),  # another prefix's topic
        ("pxmetrics.cpu", False, False),  # the prefix's dot is literal
        # Copies MirrorMaker 2 made of other regions' aggregates and alerts.
        ("region-a.p.metrics.agg.1m", True, True),
        ("region-a.p.alerts", False, True),
        ("region-a.p.metrics.cpu", False, False),  # raw events stay in their region
        ("region-a.p.metrics.agg.1m.dlq", False, False),
        ("region-a.p._schemas", False, False),
    ],
)
def test_default_subscriptions(topic: str, vm: bool, sql: bool) -> None:
    settings = Settings(topic_prefix="p.")
    assert full_match(default_topics("victoriametrics", settings), topic) is vm
    assert full_match(default_topics("sql", settings), topic) is sql


def test_default_groups_carry_the_prefix() -> None:
    assert default_group("sql", Settings(topic_prefix="p.")) == "p.hoststream-sink-sql"


def rejection(topic: str) -> Rejection:
    return Rejection(SinkRecord(topic, 0, 5, b"k", b"v", None), "bad")


def test_dead_letter_topics_are_created_once_before_their_first_message() -> None:
    created: list[str] = []
    dlq = DeadLetterQueue(FakeProducer(), "s", create_topic=created.append)
    dlq.send([rejection("a"), rejection("b")])
    dlq.send([rejection("a")])
    assert created == ["a.dlq", "b.dlq"]
    assert dead_letter_topic("metrics.cpu") == "metrics.cpu.dlq"


def test_an_unacknowledged_dead_letter_is_an_error_to_retry() -> None:
    producer = FakeProducer()
    producer.fail = 1
    dlq = DeadLetterQueue(producer, "s")
    with pytest.raises(SinkUnavailableError, match="did not acknowledge"):
        dlq.send([rejection("a")])
    dlq.send([rejection("a")])
    assert len(producer.sent) == 1


def test_an_unknown_sink_kind_names_the_setting() -> None:
    from prometheus_client import CollectorRegistry

    from hoststream.errors import ConfigurationError
    from hoststream.sinks.app import build_sink

    with pytest.raises(ConfigurationError, match="unknown sink 'alert'"):
        build_sink("alert", Settings(), registry=CollectorRegistry())  # type: ignore[arg-type]

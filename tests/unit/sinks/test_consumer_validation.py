"""Every sink's loop applies the validation contract: a record breaking it is dead-lettered.

Kafka and the destination are the in-memory doubles of tests/support/doubles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from hoststream.dead_letters import HEADER_ERROR, HEADER_ERROR_CLASS, Rejection
from hoststream.schemas import MetricKind, Sample
from hoststream.schemas.validation import Validator
from hoststream.sinks.base import BatchingSink, SinkRecord
from hoststream.sinks.consumer import BatchPolicy, SinkConsumer
from hoststream.sinks.dlq import DeadLetterQueue
from hoststream.sinks.metrics import SinkMetrics
from tests.support.doubles.kafka import FakeClock, FakeConsumer, FakeProducer, partition_log
from tests.support.records import T0, metric_event, window_aggregate

RECORDS: dict[bytes, Any] = {
    b"good": metric_event(),
    b"nan": replace(metric_event(), samples=(Sample("node_load1", float("nan")),)),
    b"negative": replace(
        metric_event(), samples=(Sample("node_intr_total", -1.0, {}, MetricKind.COUNTER),)
    ),
    b"1970": replace(metric_event(), timestamp_ms=0),
    b"huge host": replace(metric_event(), host="h" * 10_000),
    b"memory": replace(metric_event(), family="memory"),
    b"aggregate": window_aggregate(),
}


class KeepingSink(BatchingSink[Any]):
    """Keeps whatever it is handed (a test double of a store)."""

    name = "keeping"

    def __init__(self) -> None:
        self.stored: list[Any] = []

    def write(self, batch: Sequence[SinkRecord[Any]]) -> Sequence[Rejection[Any]]:
        self.stored.extend(r.decoded for r in batch)
        return []


def test_records_breaking_the_contract_are_dead_lettered_with_the_rule_broken() -> None:
    clock = FakeClock()
    consumer = FakeConsumer(
        clock, {("metrics.cpu", 0): partition_log("metrics.cpu", 0, list(RECORDS))}
    )
    producer = FakeProducer()
    sink = KeepingSink()
    loop = SinkConsumer(
        consumer,
        ["metrics.cpu"],
        sink=sink,
        decoder=lambda _topic, value, _headers: RECORDS[value or b""],
        dead_letters=DeadLetterQueue(producer, "keeping"),
        metrics=SinkMetrics(CollectorRegistry(), "keeping"),
        policy=BatchPolicy(max_records=100, max_delay_s=0.0),
        clock=clock,
        sleep=clock.sleep,
        validator=Validator(clock_ms=lambda: T0),
    )
    loop.subscribe()
    loop.step()
    assert sink.stored == [metric_event()]
    assert consumer.committed == {("metrics.cpu", 0): len(RECORDS)}
    refused = {m["value"]: dict(m["headers"]) for m in producer.sent}
    assert {value: headers[HEADER_ERROR_CLASS] for value, headers in refused.items()} == {
        b"nan": b"NonFiniteValue",
        b"negative": b"NegativeCounter",
        b"1970": b"StaleTimestamp",
        b"huge host": b"InvalidHostId",
        b"memory": b"WrongTopic",
        b"aggregate": b"WrongTopic",
    }
    assert len(refused[b"huge host"][HEADER_ERROR]) < 400

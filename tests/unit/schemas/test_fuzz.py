"""Fuzzing the decoders and the validation: bad bytes are a rejection, never a crash.

Mutated messages (bit flips, byte changes, insertions, deletions, truncation,
splices of two messages, random bytes) of every record type in both wire
formats go through every deserializer; the only exception allowed is
:class:`~hoststream.errors.SerializationError`, and whatever decodes goes
through the validation, which must answer (None or a Violation) without
raising. Records built from arbitrary field values go the same way, and what
the validation accepts must also be writable by the sinks' encoders.

The registry codecs run against confluent-kafka's in-memory mock registry.
The run is bounded (a fixed number of examples, derandomised), and counts the
messages it tried.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hoststream.errors import SerializationError
from hoststream.schemas import (
    AlertEvent,
    AlertState,
    MetricEvent,
    MetricKind,
    RegistryAvroDeserializer,
    RegistryAvroSerializer,
    Sample,
    SingleObjectAvroDeserializer,
    SingleObjectAvroSerializer,
    WindowAggregate,
)
from hoststream.schemas.validation import Validator, Violation
from hoststream.sinks.sql_rows import aggregate_row, alert_row
from hoststream.sinks.vm_series import aggregate_lines, event_lines
from tests.support.records import T0, alert_event, metric_event, window_aggregate

TOPICS = {MetricEvent: "metrics.cpu", WindowAggregate: "metrics.agg.1m", AlertEvent: "alerts"}
RECORD_TYPES = list(TOPICS)
#: Mutated messages per hypothesis example, and examples per run: 25 x 450 > 10,000.
PER_EXAMPLE = 25
EXAMPLES = 450

TRIED: Counter[str] = Counter()


def _registry() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": "mock://fuzz"})


REGISTRY = _registry()
VALIDATOR = Validator(clock_ms=lambda: T0)


def _seeds() -> list[bytes]:
    records: list[Any] = [
        metric_event(),
        window_aggregate(),
        window_aggregate(counter=False),
        alert_event(),
        alert_event(resolved=True),
    ]
    seeds = []
    for record in records:
        ctx = SerializationContext(TOPICS[type(record)], MessageField.VALUE)
        seeds.append(SingleObjectAvroSerializer(type(record))(record, ctx))
        seeds.append(RegistryAvroSerializer(REGISTRY, type(record))(record, ctx))
    return seeds


SEEDS = _seeds()
DECODERS = [
    (record_type, decoder)
    for record_type in RECORD_TYPES
    for decoder in (
        SingleObjectAvroDeserializer(record_type),
        RegistryAvroDeserializer(REGISTRY, record_type),
    )
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits of ``data``, of the kinds a broken producer or network makes."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8)
        at = rng.randrange(len(out) + 1) if out else 0
        if kind == 0 and out:  # flip a bit
            i = min(at, len(out) - 1)
            out[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:  # set a byte, often to an edge value
            i = min(at, len(out) - 1)
            out[i] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif kind == 2:  # insert bytes
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == 3:  # delete a run
            del out[at : at + rng.randint(1, 16)]
        elif kind == 4:  # truncate
            del out[at:]
        elif kind == 5:  # splice in a piece of another message
            other = rng.choice(SEEDS)
            start = rng.randrange(len(other))
            out[at:at] = other[start : start + rng.randint(1, 32)]
        elif kind == 6:  # a huge varint: a length or count that cannot be
            out[at:at] = b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"
        else:  # random bytes with a valid header, or none
            out = bytearray(out[: rng.choice([0, 2, 5, 10])] + rng.randbytes(rng.randint(0, 64)))
    return bytes(out)


def decode_and_validate(data: bytes | None) -> None:
    """Every decoder on ``data``; a record that decodes must be validated without raising."""
    for record_type, decoder in DECODERS:
        topic = TOPICS[record_type]
        try:
            record = decoder(data, SerializationContext(topic, MessageField.VALUE))
        except SerializationError:
            TRIED["refused by the decoder"] += 1
            continue
        TRIED["decoded"] += 1
        violation = VALIDATOR.check(record, topic)
        assert violation is None or isinstance(violation, Violation)
        if violation is None:
            TRIED["valid"] += 1
            store_encodings(record)


def store_encodings(record: object) -> None:
    """What the sinks would write of a valid record encodes without NaN or error."""
    if isinstance(record, MetricEvent):
        for line in event_lines(record):
            json.dumps(line, allow_nan=False)
    elif isinstance(record, WindowAggregate):
        for line in aggregate_lines(record):
            json.dumps(line, allow_nan=False)
        aggregate_row(record)
    elif isinstance(record, AlertEvent):
        alert_row(record)


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1))
def _mutated_messages(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(PER_EXAMPLE):
        TRIED["messages"] += 1
        decode_and_validate(mutate(rng.choice(SEEDS), rng))


def test_mutated_messages_are_refused_or_decode_to_something_the_validation_judges() -> None:
    TRIED.clear()
    _mutated_messages()
    # The run is bounded, and big enough: more than 10,000 messages, some of
    # each outcome (refused, decoded and invalid, decoded and valid).
    assert TRIED["messages"] >= 10_000, TRIED
    assert TRIED["refused by the decoder"] > 0
    assert TRIED["decoded"] > TRIED["valid"] > 0


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(data=st.one_of(st.none(), st.binary(max_size=200)))
def test_arbitrary_bytes_are_refused_or_judged(data: bytes | None) -> None:
    TRIED["messages"] += 1
    decode_and_validate(data)


text = st.text(max_size=40) | st.sampled_from(["web-1", "node_load1", "cpu", "", "h" * 300])
floats = st.floats(allow_nan=True, allow_infinity=True)
labels = st.dictionaries(text, text, max_size=5)
timestamps = st.integers(-(2**40), 2**42) | st.just(T0)


@st.composite
def events(draw: st.DrawFn) -> MetricEvent:
    samples = draw(
        st.lists(
            st.builds(Sample, text, floats, labels, st.sampled_from(list(MetricKind))), max_size=5
        )
    )
    return MetricEvent(
        host=draw(text),
        family=draw(text),
        timestamp_ms=draw(timestamps),
        samples=tuple(samples),
        interval_ms=draw(st.integers(-(2**31), 2**31 - 1)),
        seq=draw(st.integers(0, 2**40)),
        host_labels=draw(labels),
    )


@st.composite
def aggregates(draw: st.DrawFn) -> WindowAggregate:
    stats = {name: draw(floats) for name in ("sum", "min", "max", "mean", "last")}
    stats |= {name: draw(floats) for name in ("p50", "p90", "p95", "p99")}
    start = draw(timestamps)
    size = draw(st.sampled_from([60_000, 300_000, 0, -1, 7]))
    return WindowAggregate(
        host=draw(text),
        metric=draw(text),
        kind=draw(st.sampled_from(list(MetricKind))),
        window_size_ms=size,
        window_start=start,
        window_end=start + draw(st.sampled_from([size, 1])),
        count=draw(st.integers(-2, 2**40)),
        quantile_relative_error=draw(floats),
        labels=draw(labels),
        rate_per_second=draw(st.none() | floats),
        **stats,
    )


@st.composite
def alerts(draw: st.DrawFn) -> AlertEvent:
    return AlertEvent(
        dedup_key=draw(text),
        rule=draw(text),
        state=draw(st.sampled_from(list(AlertState))),
        severity=draw(text),
        host=draw(text),
        metric=draw(text),
        value=draw(floats),
        threshold=draw(floats),
        starts_at=draw(timestamps),
        window_end=draw(timestamps),
        event_time=draw(timestamps),
        ends_at=draw(st.none() | timestamps),
        series_labels=draw(labels),
        labels=draw(labels),
        annotations=draw(labels),
    )


@settings(max_examples=600, derandomize=True, deadline=None, database=None)
@given(record=st.one_of(events(), aggregates(), alerts()))
def test_records_of_arbitrary_fields_round_trip_or_are_refused_then_judged(record: Any) -> None:
    TRIED["records"] += 1
    topic = TOPICS[type(record)]
    ctx = SerializationContext(topic, MessageField.VALUE)
    try:
        data = SingleObjectAvroSerializer(type(record))(record, ctx)
    except SerializationError:
        # Out of the schema's range (an int field over 32 bits): refused at the source.
        TRIED["refused by the encoder"] += 1
        return
    decode_and_validate(data)
    violation = VALIDATOR.check(record, topic)
    if violation is None:
        store_encodings(record)

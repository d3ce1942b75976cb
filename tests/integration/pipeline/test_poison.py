"""Bad input on every topic while the whole pipeline runs: nothing stalls, nothing changes silently.

Simulated hosts -> producer -> Kafka (with the schema registry) -> stream
processor -> VictoriaMetrics and SQL sinks, on the real services. While it
runs, more than 20 kinds of bad record are written straight into every raw
topic (``metrics.<family>``) and the aggregate topic (``metrics.agg.1m``).
Then:

- every bad record is in the dead-letter topic of each consumer that reads
  it, with a reason, or, where accepting it is right (a counter reset, a
  duplicate, a key that is not UTF-8), stored unchanged;
- every consumer group's lag returns to zero within 30 s;
- every good sample from before and after the bad records is stored, and
  every window of every good series;
- no alert fires because of a bad record (rules a bad record would trip if
  it got through: a huge load, a negative counter, a host silent since 1970).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.config import Settings
from hoststream.dead_letters import (
    HEADER_ERROR,
    HEADER_ERROR_CLASS,
    HEADER_SINK,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
)
from hoststream.kafka import TopicSpec, consumer_config, ensure_topics, producer_config
from hoststream.producers.agent import create_metric_topics
from hoststream.producers.publisher import EventPublisher
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import (
    FAMILIES,
    MetricEvent,
    MetricKind,
    Sample,
    WindowAggregate,
    codec_for,
)
from hoststream.streams.windows import WindowSize
from hoststream.topics import aggregate_topic, alerts_topic, metric_topic
from tests.support.kafka import drain
from tests.support.pipeline import Component, sql_rows, vm_raw_samples, wait_for
from tests.support.reference import windows_of
from tests.support.sinks import vm_export

INTERVAL_MS = 10_000
WINDOW_MS = 60_000
TICKS = 18  # three minutes of good data, half before the bad records, half after
LAG_LIMIT_S = 30.0

RULES = """
rules:
  - name: PoisonHugeLoad
    selector: {metric: node_load1, window: 1m}
    aggregate: max
    comparison: ">"
    threshold: 1000000
    for: 1
    severity: critical
    annotations: {summary: "{host} load {value}"}
  - name: PoisonNegativeCounter
    selector: {metric: node_context_switches_total, window: 1m}
    aggregate: min
    comparison: "<"
    threshold: 0
    for: 1
    severity: critical
    annotations: {summary: "{host} counter {value}"}
  - name: HostSilent
    nodata: true
    selector: {metric: node_load1, window: 1m}
    for: 30
    severity: critical
    annotations: {summary: "{host} silent"}
"""


@dataclass
class Bad:
    """One bad record: what it is, where it went, and who must refuse it."""

    kind: str
    topic: str
    key: bytes | None
    value: bytes | None
    #: the consumers that must dead-letter it (``streams``, ``victoriametrics``, ``sql``)
    refused_by: tuple[str, ...]
    partition: int = -1
    offset: int = -1


def _ctx(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def _random_text(rng: random.Random, length: int) -> str:
    # Incompressible, so PostgreSQL cannot squeeze an index row under its limit.
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(length))


def _with_negative_kind(counter: bytes, gauge: bytes) -> bytes:
    """``counter``'s bytes with its kind's index (1, byte 0x02) made -2 (0x03): the one
    byte where the same record as a gauge (index 0) differs. An Avro reader looking
    the symbol up from the end would read a gauge."""
    at = next(i for i, (c, g) in enumerate(zip(counter, gauge, strict=True)) if c != g)
    assert (counter[at], gauge[at]) == (2, 0)
    return counter[:at] + b"\x03" + counter[at + 1 :]


def bad_events(settings: Settings, unique: str, family: str, now: int) -> list[Bad]:
    """Bad records for one raw topic; read by the stream processor and the VictoriaMetrics sink."""
    topic = metric_topic(settings, family)
    encode = codec_for(settings, MetricEvent).serializer
    encode_aggregate = codec_for(settings, WindowAggregate).serializer
    host = f"{unique}-bad-{family}"
    good = MetricEvent(host, family, now, (Sample("node_load1", 1.0),))
    ctx = _ctx(topic)
    valid = encode(good, ctx)
    readers = ("streams", "victoriametrics")

    def event(kind: str, record: MetricEvent) -> Bad:
        return Bad(kind, topic, host.encode(), encode(record, _ctx(topic)), readers)

    def samples(*s: Sample) -> MetricEvent:
        return replace(good, samples=s)

    other_family = "memory" if family != "memory" else "cpu"
    aggregate = WindowAggregate(
        host, "node_load1", MetricKind.GAUGE, WINDOW_MS, now - now % WINDOW_MS - WINDOW_MS,
        now - now % WINDOW_MS, 1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.01,
    )  # fmt: skip
    rng = random.Random(family)
    return [
        Bad("random bytes", topic, host.encode(), rng.randbytes(64), readers),
        Bad("empty value", topic, host.encode(), b"", readers),
        Bad("null value", topic, host.encode(), None, readers),
        Bad("wrong magic byte", topic, host.encode(), b"\x07" + valid[1:], readers),
        Bad(
            "unknown schema id", topic, host.encode(), b"\x00\x7f\xff\xff\xf0" + valid[5:], readers
        ),
        Bad("truncated avro", topic, host.encode(), valid[: len(valid) // 2], readers),
        Bad("trailing bytes", topic, host.encode(), valid + b"\x00\x01", readers),
        Bad(
            "another schema's record",
            topic,
            host.encode(),
            encode_aggregate(aggregate, _ctx(f"{unique}.elsewhere")),
            readers,
        ),
        event("nan", samples(Sample("node_load1", math.nan))),
        event("+inf", samples(Sample("node_load1", math.inf))),
        event("-inf", samples(Sample("node_load1", -math.inf))),
        event(
            "NaN beside a huge value",
            samples(Sample("node_load1", 1e300), Sample("node_load5", math.nan)),
        ),
        event(
            "negative counter",
            samples(Sample("node_context_switches_total", -5.0, {}, MetricKind.COUNTER)),
        ),
        event("1970 timestamp", replace(good, timestamp_ms=0)),
        event("ten years ahead", replace(good, timestamp_ms=now + 10 * 365 * 86_400_000)),
        event("10 kB host id", replace(good, host="h" * 10_000)),
        event("host id with a space", replace(good, host=f"{host} x")),
        event(
            "10,000 labels",
            samples(Sample("node_load1", 1.0, {f"l{i}": "x" for i in range(10_000)})),
        ),
        event("wrong family on the topic", replace(good, family=other_family)),
        event("invalid metric name", samples(Sample("node-load1", 1.0))),
        event("reserved label", samples(Sample("node_load1", 1.0, {"job": "other"}))),
        event("NUL in a label value", samples(Sample("node_load1", 1.0, {"a": "x\x00y"}))),
        event("invalid label name", samples(Sample("node_load1", 1.0, {"1a": "x"}))),
        event("one series twice", samples(Sample("node_load1", 1.0), Sample("node_load1", 2.0))),
        event("2 kB label value", samples(Sample("node_load1", 1.0, {"a": "v" * 2048}))),
        Bad(
            "negative kind index",
            topic,
            host.encode(),
            _with_negative_kind(
                encode(
                    samples(Sample("node_context_switches_total", 5.0, {}, MetricKind.COUNTER)), ctx
                ),
                encode(
                    samples(Sample("node_context_switches_total", 5.0, {}, MetricKind.GAUGE)), ctx
                ),
            ),
            readers,
        ),
    ]


def accepted_events(settings: Settings, unique: str, family: str, now: int) -> list[Bad]:
    """Odd but valid records: stored as they are, by every consumer."""
    topic = metric_topic(settings, family)
    encode = codec_for(settings, MetricEvent).serializer
    at = now - now % INTERVAL_MS

    def event(host: str, ts: int, value: float) -> MetricEvent:
        sample = Sample("node_context_switches_total", value, {}, MetricKind.COUNTER)
        return MetricEvent(f"{unique}-{host}-{family}", family, ts, (sample,))

    dup = encode(event("dup", at, 7.0), _ctx(topic))
    return [
        # A counter going backwards is a reset (a reboot): both values are stored.
        Bad("backwards counter", topic, None, encode(event("reset", at, 100.0), _ctx(topic)), ()),
        Bad(
            "backwards counter",
            topic,
            None,
            encode(event("reset", at + INTERVAL_MS, 3.0), _ctx(topic)),
            (),
        ),
        # The value names the host; a key that is not UTF-8 changes nothing.
        Bad(
            "non-UTF-8 key", topic, b"\xff\xfe\x00", encode(event("key", at, 1.0), _ctx(topic)), ()
        ),
        # The same message twice: stored once (writes are idempotent).
        Bad("duplicate", topic, None, dup, ()),
        Bad("duplicate", topic, None, dup, ()),
    ]


def bad_aggregates(settings: Settings, unique: str, now: int) -> list[Bad]:
    """Bad records for the aggregate topic; read by both sinks."""
    topic = aggregate_topic(settings, WindowSize(WINDOW_MS))
    encode = codec_for(settings, WindowAggregate).serializer
    encode_event = codec_for(settings, MetricEvent).serializer
    host = f"{unique}-bad-agg"
    end = now - now % WINDOW_MS
    good = WindowAggregate(
        host, "node_load1", MetricKind.GAUGE, WINDOW_MS, end - WINDOW_MS, end,
        6, 6.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.01,
    )  # fmt: skip
    counter = replace(good, metric="node_context_switches_total", kind=MetricKind.COUNTER)
    ctx = _ctx(topic)
    valid = encode(good, ctx)
    valid_counter = encode(counter, ctx)
    readers = ("victoriametrics", "sql")

    def aggregate(kind: str, record: WindowAggregate) -> Bad:
        return Bad(kind, topic, host.encode(), encode(record, _ctx(topic)), readers)

    rng = random.Random("aggregates")
    return [
        Bad("random bytes", topic, host.encode(), rng.randbytes(64), readers),
        Bad("empty value", topic, host.encode(), b"", readers),
        Bad("null value", topic, host.encode(), None, readers),
        Bad("wrong magic byte", topic, host.encode(), b"\x07" + valid[1:], readers),
        Bad(
            "unknown schema id", topic, host.encode(), b"\x00\x7f\xff\xff\xf0" + valid[5:], readers
        ),
        Bad("truncated avro", topic, host.encode(), valid[:-7], readers),
        Bad(
            "another schema's record",
            topic,
            host.encode(),
            encode_event(
                MetricEvent(host, "cpu", now, (Sample("node_load1", 1.0),)),
                _ctx(f"{unique}.elsewhere"),
            ),
            readers,
        ),
        aggregate("nan", replace(good, mean=math.nan)),
        aggregate("+inf", replace(good, max=math.inf)),
        aggregate("-inf", replace(good, min=-math.inf)),
        aggregate("negative counter", replace(counter, min=-1.0)),
        aggregate("negative counter rate", replace(counter, rate_per_second=-3.0)),
        aggregate("1970 window", replace(good, window_start=0, window_end=WINDOW_MS)),
        aggregate(
            "ten years ahead",
            replace(
                good,
                window_start=end + 3650 * 86_400_000,
                window_end=end + 3650 * 86_400_000 + WINDOW_MS,
            ),
        ),
        aggregate("10 kB host id", replace(good, host="h" * 10_000)),
        aggregate("10,000 labels", replace(good, labels={f"l{i}": "x" for i in range(10_000)})),
        aggregate(
            "5m window on the 1m topic",
            replace(good, window_size_ms=300_000, window_end=end - WINDOW_MS + 300_000),
        ),
        aggregate(
            "misaligned window", replace(good, window_start=end - WINDOW_MS + 1, window_end=end + 1)
        ),
        aggregate("empty window", replace(good, count=0)),
        aggregate("invalid metric name", replace(good, metric="node load1")),
        aggregate("reserved label", replace(good, labels={"instance": "elsewhere"})),
        Bad(
            "negative kind index",
            topic,
            host.encode(),
            _with_negative_kind(
                valid_counter, encode(replace(counter, kind=MetricKind.GAUGE), ctx)
            ),
            readers,
        ),
        # Valid by the contract, too big for PostgreSQL's index (SQLSTATE 54000):
        # VictoriaMetrics stores it; the SQL sink bisects its batch down to it.
        Bad(
            "index row too big",
            topic,
            host.encode(),
            encode(
                replace(
                    good,
                    host=f"{unique}-wide",
                    labels={f"l{i}": _random_text(rng, 1000) for i in range(20)},
                ),
                _ctx(topic),
            ),
            ("sql",),
        ),
    ]


def write(settings: Settings, records: list[Bad]) -> None:
    """Produce ``records`` and note where each landed."""
    producer = Producer(producer_config(settings))
    for record in records:

        def landed(err: KafkaError | None, msg: Message, record: Bad = record) -> None:
            assert err is None, err
            record.partition, record.offset = msg.partition(), msg.offset()

        producer.produce(record.topic, key=record.key, value=record.value, on_delivery=landed)
    assert producer.flush(30) == 0
    assert all(r.offset >= 0 for r in records)


def lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Messages the group has not committed yet, over ``topics``."""
    consumer = Consumer(consumer_config(settings, group))
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        committed = consumer.committed(partitions, timeout=10)
        total = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            total += high - max(tp.offset, 0) if high > 0 else 0
        return total
    finally:
        consumer.close()


def test_bad_input_on_every_topic_never_stalls_a_consumer_or_changes_data_silently(
    services: Settings, unique: str, tmp_path: Path
) -> None:
    settings = services.model_copy(update={"topic_prefix": f"{unique}."})
    fleet = SimulatedFleet(3, seed=random.randrange(10_000, 99_999))
    hosts = list(fleet.host_ids)
    # Good data ends about now: no good host stays silent long enough for HostSilent.
    t0 = (int(time.time() * 1000) // WINDOW_MS - 3) * WINDOW_MS
    ticks = [t0 + tick * INTERVAL_MS for tick in range(TICKS)]
    events = [e for ts in ticks for e in fleet.events(ts, INTERVAL_MS)]
    create_metric_topics(settings, FAMILIES)
    agg_topic = aggregate_topic(settings, WindowSize(WINDOW_MS))
    raw_topics = [metric_topic(settings, f) for f in FAMILIES]
    ensure_topics(
        settings,
        [TopicSpec(t, settings.topic_partitions, 1) for t in (agg_topic, alerts_topic(settings))],
    )
    publisher = EventPublisher(settings, codec_for(settings, MetricEvent).serializer)
    half = len(events) // 2
    for event in events[:half]:
        assert publisher.publish(event)
    assert publisher.flush(30) == 0

    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {
        **os.environ,
        "HOSTSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "HOSTSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOSTSTREAM_SCHEMA_REGISTRY_URL": settings.schema_registry_url or "",
        "HOSTSTREAM_VM_URL": settings.vm_url,
        "HOSTSTREAM_SQL_DSN": settings.sql_dsn.get_secret_value(),
    }
    stream = Component(
        ["stream", "--windows", "1m", "--grace", "5", "--rules", str(rules)],
        env,
        tmp_path / "stream.log",
    )
    vm_sink = Component(["sink", "victoriametrics"], env, tmp_path / "vm.log")
    sql_sink = Component(["sink", "sql"], env, tmp_path / "sql.log")
    components = [stream, vm_sink, sql_sink]
    now = int(time.time() * 1000)
    bad = [r for f in FAMILIES for r in bad_events(settings, unique, f, now)]
    bad += bad_aggregates(settings, unique, now)
    accepted = [r for f in ("cpu", "system") for r in accepted_events(settings, unique, f, now)]
    groups = {
        f"{settings.topic_prefix}hoststream-streams": raw_topics,
        f"{settings.topic_prefix}hoststream-sink-victoriametrics": [*raw_topics, agg_topic],
        f"{settings.topic_prefix}hoststream-sink-sql": [agg_topic, alerts_topic(settings)],
    }
    try:
        for component in components:
            component.start()
        # Every consumer is running and has read the first half.
        wait_for(lambda: len(vm_raw_samples(settings, hosts)) > 0, 120, "the first raw samples")
        wait_for(
            lambda: lag(settings, f"{settings.topic_prefix}hoststream-streams", raw_topics) == 0,
            120,
            "the stream processor to read the first half",
        )

        # The bad records, between two halves of good data.
        write(settings, bad + accepted)
        for event in events[half:]:
            assert publisher.publish(event)
        assert publisher.flush(30) == 0

        # Every group catches up: no consumer stalls on a bad record.
        written = time.monotonic()
        wait_for(
            lambda: all(lag(settings, g, t) == 0 for g, t in groups.items()),
            LAG_LIMIT_S,
            "every consumer group's lag to return to zero",
        )
        assert time.monotonic() - written <= LAG_LIMIT_S

        produced: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
        per_series: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
        for event in events:
            for sample in event.samples:
                labels = {**event.host_labels, **sample.labels}
                point = (event.timestamp_ms, float(sample.value))
                produced[(event.host, sample.name, tuple(sorted(labels.items())))].append(point)
                key = (event.host, sample.name, tuple(sorted(sample.labels.items())))
                per_series[key].append(point)
        produced_count = sum(len(points) for points in produced.values())

        def raw_complete() -> bool:
            return sum(len(p) for p in vm_raw_samples(settings, hosts).values()) >= produced_count

        wait_for(raw_complete, 60, "every good raw sample in VictoriaMetrics")
        # Every window of every good series, with every sample of it.
        reference = {
            (host, name, labels, start): len(points)
            for (host, name, labels), series in per_series.items()
            for start, points in windows_of(series, WINDOW_MS).items()
        }

        def stored_counts() -> dict[tuple, int]:
            return {
                (r["host"], r["metric"], tuple(sorted(r["labels"].items())), r["window_start"]): r[
                    "count"
                ]
                for r in sql_rows(settings, hosts)
                if r["metric"] != "hoststream_cpu_busy_ratio"
            }

        wait_for(
            lambda: set(reference) <= set(stored_counts()),
            120,
            "every window of the good series in SQL",
        )
        for component in components:
            assert component.alive(), component.log.read_text()[-3000:]
    except AssertionError as failure:
        tails = "\n".join(f"--- {c.log.name}:\n{c.log.read_text()[-2500:]}" for c in components)
        raise AssertionError(f"{failure}\n{tails}") from failure
    finally:
        for component in components:
            component.stop()

    # Good raw samples: exactly what was produced; good windows: every sample counted.
    stored = vm_raw_samples(settings, hosts)
    assert sum(len(points) for points in stored.values()) == produced_count
    counts = stored_counts()
    assert {k: counts[k] for k in reference} == reference

    # Every bad record is in the dead-letter topic of every consumer that must refuse it.
    dead = drain(settings, [f"{t}.dlq" for t in (*raw_topics, agg_topic)], idle_s=10)
    refused: dict[tuple[str, int, int], dict[str, bytes]] = {}
    for message in dead:
        headers = dict(message.headers() or [])
        where = (
            headers[HEADER_SOURCE_TOPIC].decode(),
            int(headers[HEADER_SOURCE_PARTITION]),
            int(headers[HEADER_SOURCE_OFFSET]),
        )
        refused[(headers[HEADER_SINK].decode(), *where)] = headers
    missing = [
        (record.kind, record.topic, reader)
        for record in bad
        for reader in record.refused_by
        if (reader, record.topic, record.partition, record.offset) not in refused
    ]
    assert missing == [], missing
    for record in bad:
        for reader in record.refused_by:
            headers = refused[(reader, record.topic, record.partition, record.offset)]
            assert headers[HEADER_ERROR], (record.kind, reader)
            assert len(headers[HEADER_ERROR]) <= 2000
    kinds = {r.kind for r in bad}
    assert len(kinds) >= 20, sorted(kinds)
    assert (
        refused[
            next(
                ("sql", r.topic, r.partition, r.offset)
                for r in bad
                if r.kind == "index row too big"
            )
        ][HEADER_ERROR_CLASS]
        == b"SqlRejected"
    )
    # What was right to accept was not dead-lettered, and is stored unchanged.
    wrongly = [
        r.kind
        for r in accepted
        for reader in ("streams", "victoriametrics")
        if (reader, r.topic, r.partition, r.offset) in refused
    ]
    assert wrongly == []
    odd_hosts = sorted(
        {f"{unique}-{h}-{f}" for h in ("reset", "key", "dup") for f in ("cpu", "system")}
    )
    odd = vm_raw_samples(settings, odd_hosts)
    values = {
        (dict(key)["instance"], ts): value for key, points in odd.items() for ts, value in points
    }
    at = now - now % INTERVAL_MS
    for family in ("cpu", "system"):
        assert values[(f"{unique}-reset-{family}", at)] == 100.0
        assert values[(f"{unique}-reset-{family}", at + INTERVAL_MS)] == 3.0
        assert values[(f"{unique}-key-{family}", at)] == 1.0
        assert values[(f"{unique}-dup-{family}", at)] == 7.0
    assert sum(len(p) for p in odd.values()) == 8  # the duplicate once
    # The aggregate too big for PostgreSQL's index is in VictoriaMetrics all the same.
    assert vm_export(settings, f'{{instance="{unique}-wide"}}')
    # No alert fired: none of the rules a bad record would trip saw one.
    alerts = drain(settings, [alerts_topic(settings)], idle_s=5, timeout_s=15)
    assert alerts == [], [m.value()[:200] for m in alerts]

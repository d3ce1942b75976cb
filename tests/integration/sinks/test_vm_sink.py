"""The VictoriaMetrics sink against real Kafka, schema registry and VictoriaMetrics."""

from __future__ import annotations

import json
import math
import signal
import threading
import time

import httpx
from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.config import Settings
from hoststream.dead_letters import (
    HEADER_ERROR,
    HEADER_ERROR_CLASS,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
)
from hoststream.kafka import producer_config
from hoststream.schemas import MetricEvent, MetricKind, Sample, WindowAggregate, codec_for
from tests.support.kafka import drain
from tests.support.sinks import (
    SAMPLES_PER_EVENT,
    ThreadedSink,
    committed,
    event,
    events,
    group_settings,
    produce,
    sink_process,
    small_policy,
    vm_export,
    vm_query,
    vm_samples,
    wait_committed,
    wait_for,
    wait_started,
    wait_vm_total,
)
from tests.support.tcp_proxy import TcpProxy


def test_every_valid_sample_is_stored_under_node_exporter_names_and_poison_is_dead_lettered(
    services: Settings, make_topic, unique: str
) -> None:
    settings = group_settings(services, unique)
    topic = make_topic("metrics.cpu", partitions=2)
    make_topic("metrics.cpu.dlq")
    good = events(unique, hosts=4, per_host=10)
    now_ms = good[-1].timestamp_ms
    # A WindowAggregate written under another subject: valid Avro, wrong schema for this topic.
    wrong_schema = codec_for(settings, WindowAggregate).serializer(
        WindowAggregate(
            unique,
            "node_load1",
            MetricKind.GAUGE,
            60_000,
            now_ms - 60_000,
            now_ms,
            1,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            1.0,
            0.01,
        ),
        SerializationContext(f"{unique}.elsewhere", MessageField.VALUE),
    )
    poison: list = [
        b"\x00\x00\x00\x00\x01garbage",
        b"not avro at all",
        wrong_schema,
        MetricEvent(
            host=f"{unique}-nan",
            family="cpu",
            timestamp_ms=now_ms,
            samples=(Sample("node_load1", math.nan),),
        ),
        event(f"{unique}-epoch", 0, 0),
    ]
    produce(settings, topic, good[:20] + poison + good[20:])

    sink = ThreadedSink.start("victoriametrics", settings, unique, [topic], policy=small_policy(7))
    try:
        wait_committed(settings, unique, topic)
    finally:
        sink.close()

    expected = len(good) * SAMPLES_PER_EVENT
    stored = wait_vm_total(settings, f'{{job="hoststream",instance=~"{unique}-.*"}}', expected)
    assert sum(stored.values()) == expected
    assert max(stored.values()) == 1
    assert sink.metric("hoststream_sink_records_written_total", sink="victoriametrics") == len(good)
    assert (
        sink.metric(
            "hoststream_sink_records_dead_lettered_total",
            sink="victoriametrics",
            error="SerializationError",
        )
        == 3
    )
    # The validation contract names the rule each broke (docs/validation.md).
    for rule in ("NonFiniteValue", "StaleTimestamp"):
        assert (
            sink.metric(
                "hoststream_sink_records_dead_lettered_total", sink="victoriametrics", error=rule
            )
            == 1
        ), rule

    # PromQL over node_exporter's names and labels, as a dashboard would ask.
    host = f"{unique}-h1"
    [idle] = vm_query(settings, f'node_cpu_seconds_total{{instance="{host}",cpu="0",mode="idle"}}')
    assert idle["metric"] == {
        "__name__": "node_cpu_seconds_total",
        "instance": host,
        "job": "hoststream",
        "cpu": "0",
        "mode": "idle",
        "region": "test",
    }
    assert float(idle["value"][1]) == 109.0  # the last event of the host, seq 9
    [count] = vm_query(settings, f'count_over_time(node_load1{{instance="{host}"}}[10m])')
    assert float(count["value"][1]) == 10

    dead = drain(settings, [f"{topic}.dlq"], expected=len(poison), timeout_s=30)
    assert len(dead) == len(poison)
    originals = {p if isinstance(p, bytes) else None for p in poison} - {None}
    assert originals <= {m.value() for m in dead}
    for message in dead:
        headers = dict(message.headers())
        assert headers[HEADER_SOURCE_TOPIC] == topic.encode()
        assert int(headers[HEADER_SOURCE_PARTITION]) in (0, 1)
        assert int(headers[HEADER_SOURCE_OFFSET]) >= 0
        assert headers[HEADER_ERROR]
        assert headers[HEADER_ERROR_CLASS] in (
            b"SerializationError",
            b"NonFiniteValue",
            b"StaleTimestamp",
        )
        assert message.key() in (b"poison", f"{unique}-nan".encode(), f"{unique}-epoch".encode())
    by_key = {m.key(): dict(m.headers()) for m in dead}
    assert b"nan" in by_key[f"{unique}-nan".encode()][HEADER_ERROR]
    assert by_key[b"poison"].get("origin") == b"test"


def test_aggregates_are_stored_under_recording_rule_names(
    services: Settings, make_topic, unique: str
) -> None:
    settings = group_settings(services, unique)
    topic = make_topic("metrics.agg.1m")
    end = int(time.time()) // 60 * 60_000
    aggregate = WindowAggregate(
        host=f"{unique}-h0",
        metric="node_network_receive_bytes_total",
        kind=MetricKind.COUNTER,
        window_size_ms=60_000,
        window_start=end - 60_000,
        window_end=end,
        count=6,
        sum=60.0,
        min=5.0,
        max=15.0,
        mean=10.0,
        last=15.0,
        p50=10.0,
        p90=14.0,
        p95=14.5,
        p99=15.0,
        quantile_relative_error=0.01,
        labels={"device": "eth0"},
        rate_per_second=2.5,
    )
    serializer = codec_for(settings, WindowAggregate).serializer
    producer = Producer(producer_config(settings))
    producer.produce(
        topic,
        key=aggregate.host.encode(),
        value=serializer(aggregate, SerializationContext(topic, MessageField.VALUE)),
    )
    assert producer.flush(30) == 0

    sink = ThreadedSink.start("victoriametrics", settings, unique, [topic], policy=small_policy())
    try:
        wait_committed(settings, unique, topic)
    finally:
        sink.close()
    stored = wait_vm_total(settings, f'{{instance="{unique}-h0"}}', 11)
    names = {__import__("json").loads(series)["__name__"] for series, _ in stored}
    assert "node_network_receive_bytes_total:avg_1m" in names
    assert "node_network_receive_bytes_total:rate_1m" in names
    assert len(names) == 11
    [rate] = vm_query(
        settings,
        f'node_network_receive_bytes_total:rate_1m{{instance="{unique}-h0",device="eth0"}}',
    )
    assert float(rate["value"][1]) == 2.5
    assert {ts for _, ts in stored} == {end}


def test_a_killed_sink_loses_nothing_and_duplicates_nothing(
    services: Settings, make_topic, unique: str, tmp_path
) -> None:
    """SIGKILL, restart, SIGTERM, restart: every sample stored exactly once.

    A batch written but not yet committed when the process dies is written
    again by the next owner; VictoriaMetrics, run with
    ``-dedup.minScrapeInterval=1ms`` as the stack does, keeps one of two
    identical samples (see docs/sinks.md).
    """
    settings = group_settings(services, unique)
    topic = make_topic("metrics.cpu", partitions=3)
    make_topic("metrics.cpu.dlq")
    max_records = 20
    all_events = events(unique, hosts=10, per_host=60)  # 600 events, 1800 samples
    match = f'{{job="hoststream",instance=~"{unique}-.*"}}'
    log = tmp_path / "sink.log"

    # Produce while the sinks come and go, so the kill lands mid-stream.
    producer_done = threading.Event()

    def produce_slowly() -> None:
        producer = Producer(producer_config(settings))
        for i in range(0, len(all_events), 15):
            produce(settings, topic, all_events[i : i + 15], producer)
            time.sleep(0.3)
        producer_done.set()

    feeder = threading.Thread(target=produce_slowly, daemon=True)
    feeder.start()

    def stored_total() -> int:
        return sum(vm_samples(settings, match).values())

    first = sink_process("victoriametrics", settings, unique, topic, log, max_records)
    try:
        wait_for(lambda: stored_total() > 0, 60, "the first samples")
        time.sleep(1.0)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    after_kill = stored_total()

    second = sink_process("victoriametrics", settings, unique, topic, log, max_records)
    try:
        wait_started(second, log)
        wait_for(
            lambda: producer_done.is_set() or stored_total() > after_kill + 150,
            60,
            "the restarted sink to make progress",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text()[-3000:]
    dups_after_term = sum(vm_samples(settings, match).values()) - len(vm_samples(settings, match))

    feeder.join(120)
    assert producer_done.is_set()
    third = sink_process("victoriametrics", settings, unique, topic, log, max_records)
    try:
        wait_started(third, log)
        wait_committed(settings, unique, topic, timeout_s=90)
    finally:
        third.send_signal(signal.SIGTERM)
        assert third.wait(60) == 0, log.read_text()[-3000:]

    expected = len(all_events) * SAMPLES_PER_EVENT
    stored = wait_vm_total(settings, match, expected)
    distinct = len(stored)
    duplicates = sum(stored.values()) - distinct
    assert distinct == expected, "samples were lost"
    assert duplicates == 0, duplicates
    assert dups_after_term == 0


def test_members_joining_and_leaving_the_group_neither_lose_nor_duplicate(
    services: Settings, make_topic, unique: str
) -> None:
    """Cooperative rebalances: a revoked partition's written records are committed first."""
    settings = group_settings(services, unique)
    topic = make_topic("metrics.cpu", partitions=4)
    make_topic("metrics.cpu.dlq")
    all_events = events(unique, hosts=12, per_host=30)  # 360 events
    match = f'{{job="hoststream",instance=~"{unique}-.*"}}'
    producer_done = threading.Event()

    def produce_slowly() -> None:
        producer = Producer(producer_config(settings))
        for i in range(0, len(all_events), 12):
            produce(settings, topic, all_events[i : i + 12], producer)
            time.sleep(0.15)
        producer_done.set()

    feeder = threading.Thread(target=produce_slowly, daemon=True)
    feeder.start()
    first = ThreadedSink.start(
        "victoriametrics", settings, unique, [topic], policy=small_policy(10)
    )
    second = None
    try:
        wait_for(
            lambda: (
                first.metric("hoststream_sink_records_written_total", sink="victoriametrics") > 0
            ),
            30,
            "first writes",
        )
        second = ThreadedSink.start(
            "victoriametrics", settings, unique, [topic], policy=small_policy(10)
        )
        wait_for(
            lambda: (
                second.metric("hoststream_sink_records_written_total", sink="victoriametrics") > 0
            ),
            60,
            "second writes",
        )
        first.close()  # leaves the group: the second takes every partition
        feeder.join(60)
        assert producer_done.is_set()
        wait_committed(settings, unique, topic, timeout_s=60)
    finally:
        first.close()
        if second is not None:
            second.close()
    expected = len(all_events) * SAMPLES_PER_EVENT
    stored = wait_vm_total(settings, match, expected)
    assert len(stored) == expected, "samples were lost"
    assert sum(stored.values()) == expected, "samples were duplicated"
    written = sum(
        s.metric("hoststream_sink_records_written_total", sink="victoriametrics")
        for s in (first, second)
    )
    assert written == len(all_events)


def test_while_victoriametrics_is_unreachable_the_sink_pauses_then_resumes_by_itself(
    services: Settings, make_topic, unique: str
) -> None:
    """The sink reaches VictoriaMetrics through a TCP forwarder the test cuts for a while."""
    vm = httpx.URL(services.vm_url)
    proxy = TcpProxy(vm.host, vm.port or 80)
    settings = group_settings(services, unique).model_copy(update={"vm_url": proxy.url})
    topic = make_topic("metrics.cpu", partitions=2)
    make_topic("metrics.cpu.dlq")
    all_events = events(unique, hosts=10, per_host=20)
    match = f'{{job="hoststream",instance=~"{unique}-.*"}}'
    produce(settings, topic, all_events[:100])
    sink = ThreadedSink.start("victoriametrics", settings, unique, [topic], policy=small_policy(10))
    try:
        wait_committed(settings, unique, topic)
        proxy.cut()
        try:
            produce(settings, topic, all_events[100:])
            wait_for(lambda: sink.loop.paused, 30, "the sink to pause")
            held = committed(settings, unique, topic, [0, 1])
            time.sleep(5)
            assert sink.loop.paused
            assert committed(settings, unique, topic, [0, 1]) == held  # nothing committed unwritten
            assert sink.metric("hoststream_sink_write_retries_total", sink="victoriametrics") >= 2
        finally:
            proxy.restore()
        wait_committed(settings, unique, topic, timeout_s=60)
        assert not sink.loop.paused
    finally:
        sink.close()
        proxy.cut()
    expected = len(all_events) * SAMPLES_PER_EVENT
    stored = wait_vm_total(settings.model_copy(update={"vm_url": services.vm_url}), match, expected)
    assert len(stored) == expected, "samples were lost"
    # Connections were refused before any byte was sent: nothing was written twice.
    assert sum(stored.values()) == expected


def test_remote_write_stores_the_series_json_import_stores(
    services: Settings, make_topic, unique: str
) -> None:
    """The same events through each wire format, under hosts of their own: equal series."""
    stored = {}
    # One start for both formats: each batch at the same instants, however long the first took.
    start_ms = (int(time.time()) // 10 * 10 - 40) * 1000
    for wire_format in ("import", "remote_write"):
        name = wire_format.replace("_", "")
        settings = group_settings(services, f"{unique}.{name}").model_copy(
            update={"vm_write_format": wire_format}
        )
        topic = make_topic(f"{name}.metrics.cpu", partitions=2)
        hosts = f"{unique}-{name}"
        # Several events of a host per batch (one series, many samples) and the
        # last event of each host alone in its batch (a template pasted).
        batch = events(hosts, hosts=3, per_host=4, start_ms=start_ms)
        assert produce(settings, topic, batch) == len(batch)
        sink = ThreadedSink.start(
            "victoriametrics", settings, hosts, [topic], policy=small_policy(10)
        )
        try:
            wait_committed(settings, hosts, topic)
        finally:
            sink.close()
        match = f'{{instance=~"{hosts}-h.*"}}'
        found = wait_vm_total(settings, match, len(batch) * SAMPLES_PER_EVENT)
        assert set(found.values()) == {1}, "a sample stored twice"
        stored[wire_format] = {
            (json.dumps(line["metric"], sort_keys=True).replace(hosts, "<host>"), ts, value)
            for line in vm_export(settings, match)
            for ts, value in zip(line["timestamps"], line["values"], strict=True)
        }
    assert stored["remote_write"] == stored["import"]
    assert len(stored["import"]) == 12 * SAMPLES_PER_EVENT

"""One sample followed through producer, stream processor and sink in the real Jaeger.

The pipeline runs once for the module, as ``hoststream produce``, ``stream`` and
``sink victoriametrics`` subprocesses with their own topic prefix, exporting to
the stack's Jaeger, logging JSON and serving ``/metrics``; a message no one can
decode is put on ``metrics.cpu`` first, so both the stream processor and the
sink reject one and log it inside their batch span. The tests then check
what Jaeger, the logs, the dead-letter topic and the scrapes show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Message, Producer

from hoststream.config import Settings
from hoststream.dead_letters import HEADER_SINK
from hoststream.kafka import admin_client, producer_config
from hoststream.producers.agent import PRODUCE_SPAN
from hoststream.schemas.records import FAMILIES
from hoststream.sinks.consumer import write_span_name
from hoststream.stack.jaeger import Jaeger
from hoststream.stack.victorialogs import VictoriaLogs
from hoststream.streams.processor import PROCESS_SPAN
from hoststream.streams.topics import prepare_topics
from hoststream.streams.windows import parse_windows
from hoststream.topics import dead_letter_topic, metric_topic
from tests.support.kafka import drain
from tests.support.metrics_table import documented_metrics
from tests.support.paths import REPO
from tests.support.processes import Scrape, free_port, scrape, stop

SINK_SPAN = write_span_name("victoriametrics")
SERVICES = {
    "producer": "hoststream-producer",
    "stream": "hoststream-stream",
    "sink": "hoststream-sink-victoriametrics",
}
#: The counter of each component that must grow while samples flow.
FLOWING = {
    "producer": "hoststream_producer_events_total",
    "stream": "hoststream_stream_events_total",
    "sink": "hoststream_sink_records_written_total",
}
#: Each component's rows in docs/observability.md's metrics table.
DOCUMENTED_AS = {"producer": "producer", "stream": "stream", "sink": "sinks"}
#: The stream processor's gauge with a series per source partition it owns.
STREAM_LAG = "hoststream_stream_consumer_lag"
#: The wait for the traces to connect (start-up included) is bounded by this.
RUN_S = 60.0

SpanKey = tuple[str, str]  # (trace id, span id)


@dataclass
class Run:
    host_id: str
    settings: Settings
    #: (trace id, span id) -> (service, span) of every span of the run in Jaeger.
    spans: dict[SpanKey, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    chain: tuple[SpanKey, SpanKey, SpanKey] | None = None
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scrapes: dict[str, list[Scrape]] = field(default_factory=dict)
    dead_letters: list[Message] = field(default_factory=list)


def jaeger_spans(jaeger: Jaeger, host_id: str) -> dict[SpanKey, tuple[str, dict[str, Any]]]:
    """Every span Jaeger has of the run's three services (their resource names ``host_id``)."""
    found: dict[SpanKey, tuple[str, dict[str, Any]]] = {}
    for service in SERVICES.values():
        response = httpx.get(
            f"{jaeger.address}/api/traces",
            params={
                "service": service,
                "tags": json.dumps({"host.name": host_id}),
                "limit": 2000,
                "lookback": "1h",
            },
            timeout=10,
        )
        response.raise_for_status()
        for trace in response.json()["data"]:
            for span in trace["spans"]:
                name = trace["processes"][span["processID"]]["serviceName"]
                found[(span["traceID"], span["spanID"])] = (name, span)
    return found


def links(span: dict[str, Any]) -> list[SpanKey]:
    # Jaeger shows an OpenTelemetry span link as a FOLLOWS_FROM reference.
    return [
        (r["traceID"], r["spanID"]) for r in span["references"] if r["refType"] == "FOLLOWS_FROM"
    ]


def find_chain(
    spans: dict[SpanKey, tuple[str, dict[str, Any]]],
) -> tuple[SpanKey, SpanKey, SpanKey] | None:
    """A sink span linked to a stream span linked to a producer span, if Jaeger has one."""

    def named(key: SpanKey, service: str, operation: str) -> bool:
        found = spans.get(key)
        return found is not None and found[0] == service and found[1]["operationName"] == operation

    for key, (service, span) in spans.items():
        if service != SERVICES["sink"] or span["operationName"] != SINK_SPAN:
            continue
        for stream_key in links(span):
            if not named(stream_key, SERVICES["stream"], PROCESS_SPAN):
                continue
            for producer_key in links(spans[stream_key][1]):
                if named(producer_key, SERVICES["producer"], PRODUCE_SPAN):
                    return key, stream_key, producer_key
    return None


def lag_partitions(scraped: Scrape) -> dict[tuple[str, str], float]:
    """(topic, partition) -> lag of each series of the stream processor's lag gauge."""
    return {
        (labels["topic"], labels["partition"]): value
        for labels, value in scraped.series.get(STREAM_LAG, [])
    }


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture(scope="module")
def run(
    services: Settings,
    jaeger: Jaeger,
    victorialogs: VictoriaLogs,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    unique = f"t{uuid.uuid4().hex[:10]}"
    prefix, host_id = f"{unique}.", f"obs-{unique}"
    settings = services.model_copy(update={"topic_prefix": prefix, "topic_partitions": 1})
    # Made before the sink starts: it subscribes by pattern, and librdkafka
    # sees a topic that appears later only at its next metadata refresh.
    prepare_topics(
        settings,
        app_id=settings.topic("hoststream-streams"),
        families=FAMILIES,
        windows=parse_windows(["10s"], "--windows"),
        alerts=False,
    )
    producer = Producer(producer_config(settings))
    producer.produce(metric_topic(settings, "cpu"), key=b"garbage", value=b"\x00not avro")
    assert producer.flush(10) == 0

    workdir = tmp_path_factory.mktemp("pipeline")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HOSTSTREAM_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    }
    env.update(
        {
            "HOSTSTREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
            "HOSTSTREAM_SCHEMA_REGISTRY_URL": services.schema_registry_url or "",
            "HOSTSTREAM_VM_URL": services.vm_url,
            "HOSTSTREAM_TOPIC_PREFIX": prefix,
            "HOSTSTREAM_TOPIC_PARTITIONS": "1",
            "HOSTSTREAM_HOST_ID": host_id,
            "HOSTSTREAM_STATE_DIR": str(workdir / "state"),
            "HOSTSTREAM_LOG_FORMAT": "json",
            "HOSTSTREAM_OTLP_ENDPOINT": jaeger.otlp_endpoint,
            # Log records go to the log store over OTLP, as `hoststream run` sends them.
            "HOSTSTREAM_OTLP_LOGS_ENDPOINT": victorialogs.otlp_logs_endpoint,
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
            # Export within a fraction of a second instead of every 5 s.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
    )
    seed = str(int(unique[1:9], 16))  # simulated hosts of the run's own
    commands = {
        "sink": ["sink", "victoriametrics"],
        "stream": ["stream", "--windows", "10s", "--grace", "1", "--no-alerts"],
        "producer": ["produce", "--simulate-hosts", "2", "--seed", seed, "--interval", "1"],
    }
    ports = {name: free_port() for name in commands}
    result = Run(host_id, settings, scrapes={name: [] for name in commands})
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, args in commands.items():
            with (workdir / f"{name}.log").open("wb") as out:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "hoststream", *args],
                    env={**env, "HOSTSTREAM_METRICS_PORT": str(ports[name])},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=REPO,
                )
        deadline = time.monotonic() + RUN_S
        chain_at: float | None = None
        while time.monotonic() < deadline:
            for name, process in processes.items():
                assert process.poll() is None, (workdir / f"{name}.log").read_text()[-3000:]
            for name, port in ports.items():
                scraped = scrape(port)
                if scraped is not None:
                    result.scrapes[name].append(scraped)
            if result.chain is None:
                result.spans = jaeger_spans(jaeger, host_id)
                result.chain = find_chain(result.spans)
                if result.chain is not None:
                    chain_at = time.monotonic()
            # A few seconds more after the chain appeared, so the counters have grown,
            # and until the stream processor has reported its lag (every 5 s).
            if (
                chain_at is not None
                and time.monotonic() > chain_at + 3
                and any(lag_partitions(s) for s in result.scrapes["stream"])
            ):
                break
            time.sleep(1.0)
    finally:
        for process in processes.values():
            stop(process)
    result.logs = {name: json_lines(workdir / f"{name}.log") for name in commands}
    # Everything each process had left was exported at its exit.
    result.spans = jaeger_spans(jaeger, host_id)
    result.dead_letters = drain(
        settings, [dead_letter_topic(metric_topic(settings, "cpu"))], expected=2, timeout_s=15
    )
    yield result
    admin = admin_client(settings)
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if mine:
        admin.delete_topics(mine, operation_timeout=10)


def test_a_sample_is_followed_from_the_producer_through_the_stream_processor_to_the_sink(
    run: Run,
) -> None:
    assert run.chain is not None, (
        f"no {SINK_SPAN!r} span linked to a {PROCESS_SPAN!r} span linked to a "
        f"{PRODUCE_SPAN!r} span within {RUN_S:.0f}s; Jaeger has "
        f"{sorted({(s, span['operationName']) for s, span in run.spans.values()})}"
    )
    sink_key, stream_key, producer_key = run.chain
    # Three traces, one per hop, joined by links.
    assert len({sink_key[0], stream_key[0], producer_key[0]}) == 3
    sink_span = run.spans[sink_key][1]
    tags = {t["key"]: t["value"] for t in sink_span["tags"]}
    assert tags["span.kind"] == "consumer"
    assert tags["messaging.batch.message_count"] >= 1
    stream_tags = {t["key"]: t["value"] for t in run.spans[stream_key][1]["tags"]}
    assert stream_tags["span.kind"] == "consumer"


def test_log_lines_inside_batch_spans_carry_ids_jaeger_knows(run: Run) -> None:
    for component in ("stream", "sink"):
        lines = run.logs[component]
        assert lines, f"no JSON line from {component}"
        traced = [line for line in lines if line["trace_id"] is not None]
        # The rejected message is logged inside the batch span that rejected it.
        assert traced, f"no line of {component} inside a span"
        for line in traced:
            key = (line["trace_id"], line["span_id"])
            assert key in run.spans, f"{component} logged a span Jaeger does not have: {line}"
            assert run.spans[key][0] == SERVICES[component], line
    [rejected] = [line for line in run.logs["stream"] if line["msg"].startswith("rejected")]
    assert run.spans[(rejected["trace_id"], rejected["span_id"])][1]["operationName"] == (
        PROCESS_SPAN
    )
    [dead] = [line for line in run.logs["sink"] if line["msg"].startswith("dead-lettered")]
    assert run.spans[(dead["trace_id"], dead["span_id"])][1]["operationName"] == SINK_SPAN


def store_lines(victorialogs: VictoriaLogs, trace_id: str) -> list[dict[str, Any]]:
    """The log store's records of one trace (LogsQL over its query API, JSON lines)."""
    response = httpx.get(
        f"{victorialogs.address}/select/logsql/query",
        params={"query": f'trace_id:"{trace_id}"', "limit": "100"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_the_same_trace_id_finds_the_components_log_lines_in_the_log_store(
    run: Run, victorialogs: VictoriaLogs
) -> None:
    # The lines the stream processor and the sink wrote inside the batch spans
    # that rejected the undecodable message: Jaeger has their spans, and the
    # log store has the lines under the same trace id.
    for component, first_words in (("stream", "rejected"), ("sink", "dead-lettered")):
        [line] = [x for x in run.logs[component] if x["msg"].startswith(first_words)]
        assert (line["trace_id"], line["span_id"]) in run.spans
        deadline = time.monotonic() + 30
        while not (stored := store_lines(victorialogs, line["trace_id"])):
            assert time.monotonic() < deadline, f"no {component} line in the log store"
            time.sleep(1)
        messages = [record.get("_msg", "") for record in stored]
        assert any(m.startswith(first_words) for m in messages), stored
        record = next(r for r in stored if r.get("_msg", "").startswith(first_words))
        assert record["span_id"] == line["span_id"], record
        assert record.get("service.name") == SERVICES[component], record


def test_dead_letters_carry_the_traceparent_of_the_batch_span_that_rejected_them(
    run: Run,
) -> None:
    by_sink = {}
    for message in run.dead_letters:
        headers = dict(message.headers() or [])
        by_sink[headers[HEADER_SINK].decode()] = headers
    assert set(by_sink) == {"streams", "victoriametrics"}
    for sink, service, operation in (
        ("streams", SERVICES["stream"], PROCESS_SPAN),
        ("victoriametrics", SERVICES["sink"], SINK_SPAN),
    ):
        _, trace_id, span_id, _ = by_sink[sink]["traceparent"].decode().split("-")
        assert (trace_id, span_id) in run.spans, f"the {sink} dead letter's span is not in Jaeger"
        assert run.spans[(trace_id, span_id)][0] == service
        assert run.spans[(trace_id, span_id)][1]["operationName"] == operation


@pytest.mark.parametrize("component", ["producer", "stream", "sink"])
def test_each_component_serves_its_documented_metrics_and_they_grow(
    run: Run, component: str
) -> None:
    scrapes = run.scrapes[component]
    assert len(scrapes) >= 2, f"{component}'s /metrics answered {len(scrapes)} time(s)"
    last = scrapes[-1].metrics
    documented = documented_metrics()[DOCUMENTED_AS[component]]
    for name, row in documented.items():
        assert name in last, f"{component} does not serve {name}"
        assert last[name][0] == row.type, name
    counter = FLOWING[component]
    flowing = [s for s in scrapes if s.metrics.get(counter, ("", 0.0))[1] > 0]
    assert flowing, f"{counter} stayed at 0"
    assert flowing[-1].metrics[counter][1] > flowing[0].metrics[counter][1], (
        f"{counter} did not grow over {flowing[-1].at - flowing[0].at:.0f}s of traffic"
    )


def test_the_stream_processor_reports_the_lag_of_each_input_partition(run: Run) -> None:
    reported = [lag_partitions(s) for s in run.scrapes["stream"]]
    assert any(reported), f"no {STREAM_LAG} series within {RUN_S:.0f}s"
    last = [r for r in reported if r][-1]
    # One worker owns every partition of every metric topic (one partition each).
    assert set(last) == {(metric_topic(run.settings, f), "0") for f in FAMILIES}
    for partition, lag in last.items():
        assert lag >= 0, partition
        assert lag == int(lag), partition
    # The producer puts a few dozen messages a second at most; a worker keeping up
    # is far less behind than everything the run produced.
    produced = run.scrapes["producer"][-1].metrics[FLOWING["producer"]][1]
    assert sum(last.values()) < max(produced, 50), last

"""The live aggregate stream (SSE from Kafka) and the PromQL pass-through."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.kafka import TopicSpec, ensure_topics, producer_config
from hoststream.schemas import MetricKind, WindowAggregate, codec_for


def aggregate(host: str, metric: str, start_ms: int) -> WindowAggregate:
    return WindowAggregate(
        host=host,
        metric=metric,
        kind=MetricKind.GAUGE,
        window_size_ms=60_000,
        window_start=start_ms,
        window_end=start_ms + 60_000,
        count=6,
        sum=3.0,
        min=0.25,
        max=0.75,
        mean=0.5,
        last=0.5,
        p50=0.5,
        p90=0.7,
        p95=0.72,
        p99=0.75,
        quantile_relative_error=0.01,
        labels={"cpu": "0"},
    )


def test_stream_delivers_an_aggregate_produced_after_connecting(api_server) -> None:
    settings = api_server.settings
    topic = settings.topic("metrics.agg.1m")
    ensure_topics(settings, [TopicSpec(topic, 2, 1)])
    encode = codec_for(settings, WindowAggregate).serializer
    context = SerializationContext(topic, MessageField.VALUE)

    def serialize(record: WindowAggregate, _ctx: None) -> bytes:
        return encode(record, context)

    received: list[dict] = []
    subscribed = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {api_server.token()}"}
        with httpx.stream(
            "GET",
            f"{api_server.url}/api/v1/stream/aggregates",
            params={"host": "sse-host"},
            headers=headers,
            timeout=httpx.Timeout(30, read=30),
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith(": subscribed"):
                    subscribed.set()
                if line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert subscribed.wait(30)
    producer = Producer(producer_config(settings))
    start = (int(time.time()) // 60) * 60_000
    # One for another host (filtered out), then the one the client asked for.
    producer.produce(
        topic, key=b"other", value=serialize(aggregate("other", "node_load1", start), None)
    )
    producer.produce(
        topic, key=b"sse-host", value=serialize(aggregate("sse-host", "node_load1", start), None)
    )
    assert producer.flush(10) == 0
    listener.join(30)
    assert len(received) == 1
    event = received[0]
    assert event["host"] == "sse-host"
    assert event["window"] == "1m"
    assert event["window_start"] == start
    assert event["p99"] == 0.75
    assert event["labels"] == {"cpu": "0"}


def test_promql_pass_through(api_server) -> None:
    series = f"hoststream_api_probe_{uuid.uuid4().hex[:8]}"
    now_ms = int(time.time() * 1000)
    line = {
        "metric": {"__name__": series, "instance": "h9"},
        "values": [7.0],
        "timestamps": [now_ms],
    }
    vm = api_server.settings.vm_url
    httpx.post(f"{vm}/api/v1/import", content=json.dumps(line)).raise_for_status()
    httpx.get(f"{vm}/internal/force_flush").raise_for_status()
    deadline = time.monotonic() + 15
    while True:
        response = api_server.get("/api/v1/query", params={"query": f"sum({series})"})
        assert response.status_code == 200
        result = response.json()["data"]["result"]
        if result or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert float(result[0]["value"][1]) == 7.0
    ranged = api_server.get(
        "/api/v1/query_range",
        params={"query": series, "start": str(now_ms // 1000 - 60), "step": "15s"},
    )
    assert ranged.status_code == 200
    assert ranged.json()["data"]["resultType"] == "matrix"
    # VictoriaMetrics' own complaint about a bad query comes back as a 4xx, not a 5xx.
    bad = api_server.get("/api/v1/query", params={"query": "sum(("})
    assert 400 <= bad.status_code < 500

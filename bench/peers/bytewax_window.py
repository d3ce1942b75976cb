"""Bytewax's tumbling-window aggregation of metric samples.

``python -m bench.peers.bytewax_window GROUP TOPIC...``, run with the
interpreter of ``.hoststream/bench-bytewax`` (``deploy/local/install-bench.sh``),
a virtualenv of its own like Quix Streams'; it imports nothing of hoststream.
Kafka from ``HOSTSTREAM_KAFKA_BOOTSTRAP``.

The same reduce as the Quix peer (``bench/peers/quix_window.py``): per topic
and host (the message key), a 1-minute tumbling window on the Kafka timestamp
(the event's collection time) holding count, sum, min and max of every series
of that host, updated once per event with ``fold_window``; closed windows are
discarded. One worker, as every other contender has one process.

Bytewax keeps its own offsets (its recovery snapshots) rather than a consumer
group's: the bench follows a contender by the group's committed offsets, so
the source's librdkafka consumers get ``group.id`` GROUP and commit what they
have handed to the dataflow every second (auto commit of stored offsets; the
dataflow runs the batch before the next is read). Runs until SIGTERM.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING
from fastavro import parse_schema, schemaless_reader

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "metric_event.avsc"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Window = dict[str, list[float]]


def _series(sample: dict[str, Any]) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(sample["labels"].items()))
    return f"{sample['name']}|{labels}"


def reducer(window: Window, event: dict[str, Any]) -> Window:
    for sample in event["samples"]:
        key = _series(sample)
        x = sample["value"]
        stats = window.get(key)
        if stats is None:
            window[key] = [1, x, x, x]
        else:
            stats[0] += 1
            stats[1] += x
            stats[2] = min(stats[2], x)
            stats[3] = max(stats[3], x)
    return window


class _Discard(DynamicSink[Any]):
    """Closed windows go nowhere, as the Quix peer's do."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DiscardPartition:
        return _DiscardPartition()


class _DiscardPartition(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        pass


def build(group: str, topics: list[str]) -> Dataflow:
    schema = parse_schema(json.loads(SCHEMA.read_text()))
    progress_file = os.environ.get("BENCH_PROGRESS_FILE")
    seen = {"samples": 0, "first": 0.0, "reported": 0.0}

    def decode(message: KafkaSourceMessage[bytes, bytes]) -> tuple[str, tuple[int, Any]]:
        # Confluent wire format: magic byte and 4-byte schema id, then Avro.
        event = schemaless_reader(io.BytesIO(message.value[5:]), schema)
        if progress_file:  # its own count, should its commits not show progress
            now = time.time()
            seen["first"] = seen["first"] or now
            seen["samples"] += len(event["samples"])
            if now - seen["reported"] >= 1.0:
                seen["reported"] = now
                Path(progress_file).write_text(f"{seen['first']} {now} {seen['samples']}\n")
        key = f"{message.topic}|{(message.key or b'').decode()}"
        return key, (message.timestamp[1], event)

    flow = Dataflow("hoststream-bench")
    messages = op.input(
        "kafka",
        flow,
        KafkaSource(
            [os.environ.get("HOSTSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")],
            topics,
            tail=True,
            starting_offset=OFFSET_BEGINNING,
            add_config={
                "group.id": group,
                "enable.auto.commit": "true",
                "auto.commit.interval.ms": "1000",
                "statistics.interval.ms": "0",
            },
        ),
    )
    events = op.map("decode", messages, decode)
    clock = EventClock(
        lambda item: EPOCH + timedelta(milliseconds=item[0]),
        wait_for_system_duration=timedelta(seconds=0),
    )
    windows = fold_window(
        "tumbling-1m",
        events,
        clock,
        TumblingWindower(length=timedelta(minutes=1), align_to=EPOCH),
        builder=dict,
        folder=lambda window, item: reducer(window, item[1]),
        merger=lambda a, b: a,
    )
    op.output("discard", windows.down, _Discard())
    return flow


def main(argv: list[str]) -> None:
    group, *topics = argv
    run_main(build(group, topics))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Pathway's tumbling-window aggregation of metric samples.

``python -m bench.peers.pathway_window GROUP TOPIC...``, run with the
interpreter of ``.hoststream/bench-pathway`` (``deploy/local/install-bench.sh``),
a virtualenv of its own like Quix Streams'; it imports nothing of hoststream.
Kafka from ``HOSTSTREAM_KAFKA_BOOTSTRAP``.

The same numbers as the Quix peer (``bench/peers/quix_window.py``): count,
sum, min and max of every series of every host over 1-minute tumbling windows
of the Kafka timestamp (the event's collection time). Written as Pathway
expresses it: a Python UDF decodes each Avro value into (series, value)
pairs, the table is flattened to a row per sample, and ``windowby`` with
Pathway's tumbling window and ``exactly_once_behavior`` (one result per
window once it closes, as Quix's ``final()``) reduces per (topic, host,
series) in its Rust engine; results are discarded (``pw.io.null``).

Pathway's Kafka reader keeps its own offsets (in its persistence, off here)
and its librdkafka consumers read far ahead of the engine: with auto commit
on, the group had committed every offset while the engine had processed a
few hundred events. So the group commits nothing, and the bench measures
Pathway by its own count of samples decoded in the engine
(``BENCH_PROGRESS_FILE``, as for the plain Faust peer). Runs until SIGTERM.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pathway as pw
from fastavro import parse_schema, schemaless_reader

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "metric_event.avsc"
_schema = parse_schema(json.loads(SCHEMA.read_text()))
_PROGRESS = os.environ.get("BENCH_PROGRESS_FILE")
_seen = {"samples": 0, "first": 0.0, "reported": 0.0}


def _count(n: int) -> None:
    """Samples decoded so far, to the progress file at most once a second."""
    now = time.time()
    _seen["first"] = _seen["first"] or now
    _seen["samples"] += n
    if _PROGRESS and now - _seen["reported"] >= 1.0:
        _seen["reported"] = now
        Path(_PROGRESS).write_text(f"{_seen['first']} {now} {_seen['samples']}\n")


def _series(sample: dict[str, Any]) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(sample["labels"].items()))
    return f"{sample['name']}|{labels}"


@pw.udf
def samples(data: bytes) -> list[tuple[str, float]]:
    # Confluent wire format: magic byte and 4-byte schema id, then Avro.
    event = schemaless_reader(io.BytesIO(data[5:]), _schema)
    _count(len(event["samples"]))
    return [(_series(s), float(s["value"])) for s in event["samples"]]


def _series_id(topic: str, host: bytes, sample: tuple[str, float]) -> str:
    return f"{topic}|{host.decode()}|{sample[0]}"


def build(group: str, topics: list[str]) -> None:
    settings = {
        "bootstrap.servers": os.environ.get("HOSTSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": "false",
    }
    # One reader per topic: the reader takes a single topic.
    readers = [
        pw.io.kafka.read(
            settings, topic=topic, format="raw", with_metadata=True, autocommit_duration_ms=500
        )
        for topic in topics
    ]
    events = pw.Table.concat_reindex(*readers)
    rows = events.select(
        host=pw.this.key,
        topic=pw.this._metadata["topic"].as_str(),
        t=pw.unwrap(pw.this._metadata["timestamp_millis"].as_int()),
        sample=samples(pw.this.data),
    ).flatten(pw.this.sample)
    per_series = rows.select(
        series=pw.apply_with_type(_series_id, str, pw.this.topic, pw.this.host, pw.this.sample),
        t=pw.this.t,
        value=pw.apply_with_type(lambda sample: sample[1], float, pw.this.sample),
    )
    windows = per_series.windowby(
        pw.this.t,
        window=pw.temporal.tumbling(duration=60_000),
        instance=pw.this.series,
        behavior=pw.temporal.exactly_once_behavior(),
    ).reduce(
        series=pw.this._pw_instance,
        count=pw.reducers.count(),
        sum=pw.reducers.sum(pw.this.value),
        min=pw.reducers.min(pw.this.value),
        max=pw.reducers.max(pw.this.value),
    )
    pw.io.null.write(windows)


def main(argv: list[str]) -> None:
    group, *topics = argv
    build(group, topics)
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)


if __name__ == "__main__":
    main(sys.argv[1:])

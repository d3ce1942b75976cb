"""A plain Faust agent aggregating metric samples as Faust's documentation shows.

``python -m bench.peers.faust_plain APP_ID TOPIC...``; Kafka from
``HOSTSTREAM_KAFKA_BOOTSTRAP``. One windowed-table update per sample:
``table[series]`` holds ``[count, sum, min, max]`` of the current tumbling
minute of event time (the Kafka timestamp, which hoststream's producer sets to
the event's collection time). The table's changelog is Faust's own; the app
id is the consumer group. Runs until SIGTERM.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import faust
from fastavro import schemaless_reader

from hoststream.schemas import load_schema

WINDOW_S = 60
PARTITIONS = int(os.environ.get("HOSTSTREAM_TOPIC_PARTITIONS", "6"))


def build(app_id: str, topics: list[str], datadir: str) -> faust.App:
    schema = load_schema("metric_event").parsed
    app = faust.App(
        app_id,
        broker=f"kafka://{os.environ.get('HOSTSTREAM_KAFKA_BOOTSTRAP', '127.0.0.1:9092')}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=datadir,
        topic_partitions=PARTITIONS,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(
        *topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    windows = (
        app.Table("aggregates", default=list, partitions=PARTITIONS)
        .tumbling(WINDOW_S, expires=timedelta(minutes=10))
        .relative_to_stream()
    )

    # Samples processed, whether or not their offsets are committed yet: under
    # this load Faust's commits can lag far behind (see bench/streams.py).
    seen = {"samples": 0, "first": 0.0}

    @app.agent(source)
    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            # Confluent wire format: magic byte and 4-byte schema id, then Avro.
            event = cast(dict[str, Any], schemaless_reader(io.BytesIO(value[5:]), schema))
            seen["first"] = seen["first"] or time.time()
            seen["samples"] += len(event["samples"])
            host = event["host"]
            for sample in event["samples"]:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample["labels"].items()))
                key = f"{host}|{sample['name']}|{labels}"
                x = sample["value"]
                current = windows[key].value()
                if not current:  # the default: a series' first sample in this window
                    windows[key] = [1, x, x, x]
                else:
                    count, total, low, high = current
                    windows[key] = [count + 1, total + x, min(low, x), max(high, x)]

    progress_file = os.environ.get("BENCH_PROGRESS_FILE")
    if progress_file:

        @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
        async def report_progress() -> None:
            Path(progress_file).write_text(f"{seen['first']} {time.time()} {seen['samples']}\n")

    return app


def main(argv: list[str]) -> None:
    app_id, *topics = argv
    with tempfile.TemporaryDirectory(prefix="faust-plain-") as datadir:
        app = build(app_id, topics, datadir)
        worker = faust.Worker(app, loglevel="warning", quiet=True)
        worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])

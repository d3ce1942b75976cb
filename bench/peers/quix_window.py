"""Quix Streams' tumbling-window aggregation of metric samples.

``python -m bench.peers.quix_window GROUP TOPIC...``, run with the
interpreter of ``.hoststream/bench-quix`` (``deploy/local/install-bench.sh``):
Quix Streams needs an older confluent-kafka and pydantic than hoststream
pins, so it lives in a virtualenv of its own and imports nothing of
hoststream. Kafka from ``HOSTSTREAM_KAFKA_BOOTSTRAP``.

Per topic, a 1-minute tumbling window on the Kafka timestamp (the event's
collection time), keyed by host (the message key), reduced as Quix's
documentation shows: the window holds count, sum, min and max of every
series of that host, updated once per event. Keying by series instead would
need ``group_by`` and a repartition topic. Runs until SIGTERM.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader
from quixstreams import Application
from quixstreams.models.serializers import Deserializer

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "metric_event.avsc"


class AvroValue(Deserializer):  # type: ignore[misc]
    """Confluent wire format: magic byte and 4-byte schema id, then Avro."""

    def __init__(self) -> None:
        super().__init__()
        self._schema = parse_schema(json.loads(SCHEMA.read_text()))

    def __call__(self, value: bytes, ctx: Any) -> Any:
        return schemaless_reader(io.BytesIO(value[5:]), self._schema)


def _series(sample: dict[str, Any]) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(sample["labels"].items()))
    return f"{sample['name']}|{labels}"


def initializer(event: dict[str, Any]) -> dict[str, list[float]]:
    return reducer({}, event)


def reducer(window: dict[str, list[float]], event: dict[str, Any]) -> dict[str, list[float]]:
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


def main(argv: list[str]) -> None:
    group, *topics = argv
    with tempfile.TemporaryDirectory(prefix="quix-") as state_dir:
        app = Application(
            broker_address=os.environ.get("HOSTSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            consumer_group=group,
            auto_offset_reset="earliest",
            commit_interval=1.0,
            state_dir=state_dir,
        )
        for name in topics:
            topic = app.topic(name, key_deserializer="str", value_deserializer=AvroValue())
            sdf = app.dataframe(topic)
            sdf.tumbling_window(60_000).reduce(reducer, initializer).final()
        app.run()


if __name__ == "__main__":
    main(sys.argv[1:])

"""The ceiling: a bare confluent-kafka consumer that only decodes each Avro value.

``python -m bench.peers.bare_consumer GROUP TOPIC...``; Kafka from
``HOSTSTREAM_KAFKA_BOOTSTRAP``. Commits every second so the benchmark can
follow its progress as it follows every other contender's; runs until SIGTERM.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time

from confluent_kafka import Consumer
from fastavro import schemaless_reader

from hoststream.schemas import load_schema


def main(argv: list[str]) -> None:
    group, *topics = argv
    schema = load_schema("metric_event").parsed
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ.get("HOSTSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    decoded = 0
    commit_at = time.monotonic() + 1.0
    while not stopping:
        for message in consumer.consume(1000, 0.5):
            value = message.value()
            if message.error() is None and value is not None:
                # Confluent wire format: magic byte and 4-byte schema id, then Avro.
                schemaless_reader(io.BytesIO(value[5:]), schema)
                decoded += 1
        if time.monotonic() >= commit_at:
            consumer.commit(asynchronous=True)
            commit_at = time.monotonic() + 1.0
    consumer.close()
    print(f"decoded {decoded} messages", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])

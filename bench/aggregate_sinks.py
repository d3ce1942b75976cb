"""The sinks' CPU per window aggregate, on a fixed workload, for one or more code trees.

``python -m bench.aggregate_sinks --aggregates 110000 --code . --code /path/to/other``
writes that many real WindowAggregates (the 1-minute windows of 100 simulated
hosts, computed by hoststream's aggregator, so every series comes back once a
window) into a topic of their own, then runs the VictoriaMetrics and SQL sink
of each code tree over it, one after the other and alternating (``--rounds``),
each in a process of its own, until the sink has committed every record. It
prints each run's CPU seconds (the sink process' own, all its threads, from
the first poll to the last commit; start-up excluded) per aggregate. CPU time
per record depends far less on what else the machine runs than rates do, and
the code trees are measured in the same run, interleaved: compare them, not
runs of different days.

The stack is the one of a sourced ``stack.env`` (or ``HOSTSTREAM_STATE_DIR``).
The SQL sink writes into a schema of its own, dropped afterwards; the
VictoriaMetrics sink writes the aggregates' series (100 simulated hosts).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _produce(count: int) -> str:
    """Write ``count`` aggregates of the last hours into a new topic; return its name."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka.serialization import MessageField, SerializationContext

    from bench.sinks import _aggregates
    from hoststream.config import Settings
    from hoststream.schemas import WindowAggregate, codec_for

    settings = Settings()
    aggregates = _aggregates(count)
    # Recent windows, within every retention and the validator's limits.
    start = (int(time.time() * 1000) - 3 * 3_600_000) // 60_000 * 60_000
    shift = start - min(a.window_start for a in aggregates)
    aggregates = [
        replace(a, window_start=a.window_start + shift, window_end=a.window_end + shift)
        for a in aggregates
    ]
    topic = f"{settings.topic_prefix}metrics.agg.1m"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    serialize = codec_for(settings, WindowAggregate).serializer
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 50})
    for a in aggregates:
        producer.produce(topic, serialize(a, ctx), key=a.host.encode())
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the aggregates were not all written")
    return topic


def _run_one(kind: str, group: str, topic: str, count: int, schema: str | None) -> dict[str, Any]:
    """Run one sink (of the code on ``sys.path``) until it committed ``count`` records."""
    from prometheus_client import CollectorRegistry

    from hoststream.config import Settings
    from hoststream.sinks.app import build_sink

    loop = build_sink(
        kind,  # type: ignore[arg-type]
        Settings(),
        registry=CollectorRegistry(),
        group_id=group,
        topics=[topic],
        sql_schema=schema,
        consumer_overrides={"auto.offset.reset": "earliest"},
    )
    if kind == "sql":
        loop.sink.migrate()  # type: ignore[attr-defined]
    try:  # the collector as `hoststream sink` sets it, in code trees that do
        from hoststream.gc_policy import tune_for_throughput
    except ImportError:
        pass
    else:
        tune_for_throughput()
    loop.subscribe()

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    cpu_start, wall_start = cpu(), time.monotonic()
    committed = 0
    while committed < count and time.monotonic() - wall_start < 600:
        loop.step()
        committed = sum(loop._committed.values())  # the loop's own count of committed records
    cpu_s, wall_s = cpu() - cpu_start, time.monotonic() - wall_start
    loop.close()
    return {
        "kind": kind,
        "records": committed,
        "cpu_s": round(cpu_s, 3),
        "wall_s": round(wall_s, 2),
        "cpu_us_per_aggregate": round(cpu_s / max(committed, 1) * 1e6, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aggregates", type=int, default=110_000)
    parser.add_argument("--kinds", default="victoriametrics,sql")
    parser.add_argument("--code", action="append", help="a code tree to measure (default: .)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--run-one", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        kind, group, topic, count, schema = args.run_one
        print(json.dumps(_run_one(kind, group, topic, int(count), schema or None)))
        return
    prefix = f"benchagg{uuid.uuid4().hex[:6]}."
    os.environ["HOSTSTREAM_TOPIC_PREFIX"] = prefix
    topic = _produce(args.aggregates)
    trees = [str(Path(c).resolve()) for c in (args.code or [str(REPO)])]
    runs = []
    try:
        for round_ in range(args.rounds):
            for tree in trees:
                for kind in args.kinds.split(","):
                    schema = f"benchagg_{uuid.uuid4().hex[:8]}" if kind == "sql" else ""
                    count = str(args.aggregates)
                    group = f"{prefix}{uuid.uuid4().hex[:6]}-{kind}"
                    out = subprocess.run(
                        # This file as a script: the tree measured need not have it.
                        [sys.executable, __file__, "--run-one", kind, group, topic, count, schema],
                        env={**os.environ, "PYTHONPATH": tree},
                        cwd=tree,
                        capture_output=True,
                        text=True,
                        timeout=900,
                        check=True,
                    )
                    run = {"code": tree, "round": round_, **json.loads(out.stdout.splitlines()[-1])}
                    print(json.dumps(run), flush=True)
                    runs.append(run)
                    if schema:
                        _drop_schema(schema)
    finally:
        _delete_topic(topic)
    for tree in trees:
        for kind in args.kinds.split(","):
            mine = [
                r["cpu_us_per_aggregate"] for r in runs if r["code"] == tree and r["kind"] == kind
            ]
            print(f"{tree} {kind}: CPU µs per aggregate {mine}")


def _drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    from hoststream.config import Settings

    with psycopg.connect(Settings().sql_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _delete_topic(topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    from hoststream.config import Settings

    admin = AdminClient({"bootstrap.servers": Settings().kafka_bootstrap})
    for done in admin.delete_topics([topic]).values():
        done.result()  # the request is sent in the background: wait for it


if __name__ == "__main__":
    main()

"""Sink benchmarks.

1. VictoriaMetrics: hoststream's sink (``build_sink("victoriametrics", ...)``,
   the consumer loop included) over pre-loaded metric topics, against bare
   ``POST /api/v1/import`` requests of the same samples, JSON lines encoded
   and gzipped before the clock starts (the ceiling).
2. SQL: the sink's bulk path (``SqlSink.write``: ``COPY`` into a staging
   table and one ``INSERT ... SELECT ... ON CONFLICT`` per batch) against the
   same upsert one row per statement in autocommit, over the same
   WindowAggregates, in a schema of its own that is dropped afterwards.

``BENCH_SINKS=sql`` (a comma-separated list of ``vm``, ``sql``) runs some of them.
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import random
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cramjam
import httpx
import orjson
import psycopg
from prometheus_client import CollectorRegistry
from psycopg import sql

from bench.common import (
    RESULTS,
    Result,
    code_version,
    delete_fleet_series,
    load_note,
    panels_plot,
    proc_cpu_seconds,
    scale,
    settings_for,
)
from bench.workload import (
    GroupProgress,
    delete_subjects,
    delete_topics,
    follow,
    load_metric_topics,
    topics_with_prefix,
)
from hoststream.gc_policy import tuned_for_throughput
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import WindowAggregate
from hoststream.sinks.app import build_sink
from hoststream.sinks.base import SinkRecord
from hoststream.sinks.consumer import BatchPolicy
from hoststream.sinks.sql import SqlSink, upsert_statement
from hoststream.sinks.sql_rows import aggregate_row
from hoststream.sinks.vm_series import event_lines
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.metrics import StreamMetrics

VM_SAMPLES = 2_000_000
SQL_ROWS = 100_000
HOSTS = 100
CAP_S = 90.0


def stack_pid(settings: Any, service: str, address: str | None = None) -> int | None:
    """The pid of the stack's ``service`` (of ``settings``' stack), if it runs; with
    ``address``, only when the service is the one at that address."""
    from hoststream.stack import Stack

    stack = Stack(settings.state_dir, settings.lib_dir, port_offset=settings.stack_port_offset)
    for status in stack.status():
        ours = address is None or status.address.rstrip("/") == address.rstrip("/")
        if status.name == service and status.pid is not None and ours:
            return status.pid
    return None


def _vm_pid(settings: Any) -> int | None:
    """The pid of the stack's VictoriaMetrics when it is the one at ``settings.vm_url``."""
    return stack_pid(settings, "victoriametrics", settings.vm_url)


#: VictoriaMetrics counts as settled once it spends under this share of a core.
_SETTLED_CORES = 0.1
#: How long to wait at most for VictoriaMetrics to settle after a pass.
_SETTLE_S = 20.0


def _settle(vm_url: str, vm_pid: int) -> None:
    """Flush VictoriaMetrics' buffers and wait until its background work (merges) is done.

    So each pass's CPU includes the work it left behind, and the next pass's
    does not.
    """
    httpx.get(f"{vm_url}/internal/force_flush", timeout=60)
    deadline = time.monotonic() + _SETTLE_S
    previous = proc_cpu_seconds(vm_pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = proc_cpu_seconds(vm_pid)
        if now - previous < _SETTLED_CORES * 0.5:
            return
        previous = now


@contextmanager
def _cpu_per_sample(
    vm_url: str, vm_pid: int | None, samples: int, *, own: bool = False
) -> Iterator[dict[str, float]]:
    """CPU µs per sample spent by VictoriaMetrics (and by this process) on the block's work.

    From each process' own accounting (``/proc/<pid>/stat``, ``getrusage``):
    what the figures' rates cost, so a ratio of rates can be read as a
    division of the machine's two cores between the sink and the store.
    VictoriaMetrics is settled before the block and after it (:func:`_settle`),
    its background work counted with the pass that caused it.
    """
    figures: dict[str, float] = {}
    if vm_pid is not None:
        _settle(vm_url, vm_pid)
    vm_before = proc_cpu_seconds(vm_pid) if vm_pid is not None else 0.0
    own_before = time.process_time()
    yield figures
    if own:
        spent = time.process_time() - own_before
        figures["sink_process_cpu_us_per_sample"] = round(spent / samples * 1e6, 3)
    if vm_pid is not None:
        _settle(vm_url, vm_pid)
        spent = proc_cpu_seconds(vm_pid) - vm_before
        figures["victoriametrics_cpu_us_per_sample"] = round(spent / samples * 1e6, 3)


def _vm(settings: Any, factor: float) -> tuple[dict[str, Any], dict[str, float], list[str]]:
    seed = random.randint(1000, 999_999)  # new host ids, hence new series, in every run
    prefix = settings.topic_prefix
    loaded = load_metric_topics(
        settings, hosts=HOSTS, target_samples=int(VM_SAMPLES * factor), seed=seed
    )
    print(f"sinks: loaded {loaded.describe()}", flush=True)
    policy = BatchPolicy()
    vm_url = settings.vm_url.rstrip("/")
    try:
        # The ceiling: the same events, encoded and compressed up front, in
        # requests of the sink's batch size, in each ingestion format; an extra
        # label per format and pass keeps their series apart from the ones the
        # sink (and the other passes) created, so each pass creates its series
        # anew. The sink's own format is sent before the sinks run and again
        # after them, and the faster pass is the ceiling: on a shared machine
        # one pass alone can land in a quiet or a busy moment.
        fleet = SimulatedFleet(HOSTS, seed=seed)
        batches: list[list[Any]] = []
        batch: list[Any] = []
        for tick in range(loaded.ticks):
            for event in fleet.events(loaded.first_ms + tick * loaded.interval_ms):
                batch.append(event)
                if len(batch) == policy.max_records:
                    batches.append(batch)
                    batch = []
        if batch:
            batches.append(batch)
        # Every pass's requests are encoded now, and the events dropped: a
        # deployed sink's process holds no heap of millions of objects, and
        # the sinks run in this one, where the collector would walk them.
        sink_format = SINK_FORMATS[settings.vm_write_format]
        other_sink_format = next(f for k, f in SINK_FORMATS.items() if f != sink_format)
        passes = [(*sink_format, "before")] + [(f, c, "after") for f, c in CEILING_FORMATS]
        requests = {p: _requests(batches, *p) for p in passes}
        del batches, batch, fleet
        gc.collect()
        ceilings: dict[str, Any] = {}
        vm_pid = _vm_pid(settings)
        samples = loaded.total_samples
        with httpx.Client(timeout=120) as client:
            with _cpu_per_sample(vm_url, vm_pid, samples) as cpu:
                before = _bare_import(client, vm_url, requests.pop(passes[0]))
            before.update(cpu)
            print(f"sinks: bare import before the sinks: {before}", flush=True)

            with _cpu_per_sample(vm_url, vm_pid, samples, own=True) as cpu:
                ours = _vm_sink(settings, loaded, policy, f"{prefix}vm", write_ahead=True)
            ours.update(cpu)
            print(f"sinks: victoriametrics sink {ours}", flush=True)
            # The same sink writing each batch before reading the next, over the
            # same topics in a group of its own. It runs second, so VictoriaMetrics
            # already knows the series: if anything, that favours it.
            with _cpu_per_sample(vm_url, vm_pid, samples, own=True) as cpu:
                in_turn = _vm_sink(
                    settings, loaded, policy, f"{prefix}vm-in-turn", write_ahead=False
                )
            in_turn.update(cpu)
            print(f"sinks: victoriametrics sink without write-ahead {in_turn}", flush=True)
            # The other wire format, over the same topics in a group of its own.
            other = "import" if settings.vm_write_format == "remote_write" else "remote_write"
            with _cpu_per_sample(vm_url, vm_pid, samples, own=True) as cpu:
                other_format = _vm_sink(
                    settings.model_copy(update={"vm_write_format": other}),
                    loaded,
                    policy,
                    f"{prefix}vm-{other}",
                    write_ahead=True,
                )
            other_format.update(cpu)
            print(f"sinks: victoriametrics sink writing {other} {other_format}", flush=True)

            for fmt, compress, run_tag in passes[1:]:
                name = f"{fmt}, {compress}"
                with _cpu_per_sample(vm_url, vm_pid, samples) as cpu:
                    ceilings[name] = _bare_import(
                        client, vm_url, requests.pop((fmt, compress, run_tag))
                    )
                ceilings[name].update(cpu)
                print(f"sinks: bare import, {name}: {ceilings[name]}", flush=True)
        after = ceilings[", ".join(sink_format)]
        ceiling = max(before, after, key=lambda c: c["samples_per_s"])
    finally:
        delete_topics(settings, topics_with_prefix(settings, prefix))
        delete_subjects(settings, prefix)
        error = delete_fleet_series(vm_url, seed, HOSTS)
        if error is not None:
            print(f"sinks: could not delete the bench series (seed {seed}): {error}")
    figures = {
        "data": loaded.describe(),
        "hoststream_sink": ours,
        "hoststream_sink_without_write_ahead": in_turn,
        "hoststream_sink_other_format": {"wire_format": other, **other_format},
        "bare_import": ceiling,
        "bare_import_sink_format_before_and_after": [before, after],
        "bare_import_by_format": ceilings,
    }
    # The fastest import of the same samples in any format measured, for a
    # sink that sends its own format: what another choice of format could reach.
    fastest = max([before, *ceilings.values()], key=lambda c: c["samples_per_s"])
    ratios = {
        "vm_sink_vs_bare_import": ours["samples_per_s"] / ceiling["samples_per_s"],
        "vm_sink_vs_fastest_bare_import": ours["samples_per_s"] / fastest["samples_per_s"],
        "vm_sink_other_format_vs_its_bare_import": other_format["samples_per_s"]
        / ceilings[", ".join(other_sink_format)]["samples_per_s"],
        "vm_sink_without_write_ahead_vs_bare_import": in_turn["samples_per_s"]
        / ceiling["samples_per_s"],
    }
    notes = [
        "CPU per sample: victoriametrics_cpu_us_per_sample is the stack's VictoriaMetrics' own "
        "CPU (/proc) over each bare import pass or sink run and the background work it left "
        "(flushed, then until VictoriaMetrics uses under a tenth of a core), divided by the "
        "samples; "
        "sink_process_cpu_us_per_sample is this process' over the sink's run (its threads, "
        "librdkafka's, start-up and learning included); absent when VictoriaMetrics is not the "
        "stack's",
        "VM sink samples/s: from its first offset commit to its last; it includes consuming, "
        "Avro decoding, validation, encoding, compression, the import requests and the commit; "
        f"batches of {policy.max_records} events; without write-ahead: the same sink with "
        "write_ahead off (each batch written before the next is read), run second over the same "
        "topics, so VictoriaMetrics already had its series; other format: the same sink "
        "writing the other wire format (HOSTSTREAM_VM_WRITE_FORMAT), run third, its ratio "
        "against the bare pass of that format",
        f"bare import: requests of {policy.max_records} events' samples, already encoded (and "
        "compressed, gzip level 1) before timing, sent one after another, in each format: "
        "JSON lines with one line per sample, or one line per series and batch (all its values "
        "and timestamps of the batch), Prometheus text, and Prometheus remote write (protobuf "
        "WriteRequest, one TimeSeries per series and batch, snappy, POST /api/v1/write); the "
        f"ratio is against the format the sink sends ({', '.join(sink_format)}), the faster of "
        "a pass before the sinks ran and one after; vm_sink_vs_fastest_bare_import is "
        "against the fastest pass of any format",
    ]
    return figures, ratios, notes


def _vm_sink(
    settings: Any, loaded: Any, policy: BatchPolicy, group: str, *, write_ahead: bool
) -> dict[str, Any]:
    """Run the VictoriaMetrics sink over ``loaded`` in ``group``; its rates (see ``follow``).

    The garbage collector is set as ``hoststream sink`` sets it before its
    loop, for the sink's run only.
    """
    loop = build_sink(
        "victoriametrics",
        settings,
        registry=CollectorRegistry(),
        group_id=group,
        topics=loaded.topics,
        policy=policy,
    )
    loop.sink.write_ahead = write_ahead
    progress = GroupProgress(settings, group, loaded.topics)
    stop = threading.Event()
    with tuned_for_throughput():
        started = time.monotonic()
        thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
        thread.start()
        try:
            return follow(progress, loaded, started, thread.is_alive, CAP_S, "the VM sink")
        finally:
            stop.set()
            thread.join(60)
            progress.close()


@dataclass
class _Requests:
    """One bare-import pass, encoded (and compressed) before it is timed."""

    path: str
    headers: dict[str, str]
    bodies: list[bytes]
    samples: int


def _requests(batches: list[list[Any]], fmt: str, compress: str, run_tag: str) -> _Requests:
    """``batches`` as requests in ``fmt``, each series labelled for this pass."""
    tag = f"{fmt}-{compress}-{run_tag}"
    bodies = [_body(fmt, b, tag) for b in batches]
    if compress == "gzip":
        bodies = [gzip.compress(body, 1) for body in bodies]
    if compress == "snappy":
        bodies = [bytes(cramjam.snappy.compress_raw(body)) for body in bodies]
    samples = sum(len(e.samples) for b in batches for e in b)
    return _Requests(_PATHS.get(fmt, "/api/v1/import"), _HEADERS[compress], bodies, samples)


def _bare_import(client: httpx.Client, vm_url: str, requests: _Requests) -> dict[str, Any]:
    """Send ``requests`` one after another; the rate (encoded beforehand)."""
    started = time.monotonic()
    for body in requests.bodies:
        response = client.post(f"{vm_url}{requests.path}", content=body, headers=requests.headers)
        response.raise_for_status()
    took = time.monotonic() - started
    return {
        "samples_per_s": requests.samples / took,
        "samples": requests.samples,
        "requests": len(requests.bodies),
        "mib_sent": round(sum(map(len, requests.bodies)) / 2**20, 1),
        "seconds": round(took, 2),
    }


#: The ingestion formats the bare import is measured with: (format, compression).
CEILING_FORMATS = [
    ("json lines, one per sample", "gzip"),
    ("json lines, one per series", "gzip"),
    ("json lines, one per series", "none"),
    ("prometheus text", "gzip"),
    ("prometheus remote write", "snappy"),
]
_PATHS = {
    "prometheus text": "/api/v1/import/prometheus",
    "prometheus remote write": "/api/v1/write",
}
_HEADERS: dict[str, dict[str, str]] = {
    "none": {},
    "gzip": {"Content-Encoding": "gzip"},
    # What Prometheus itself sends with a remote write.
    "snappy": {
        "Content-Encoding": "snappy",
        "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    },
}
#: The one the sink sends, by HOSTSTREAM_VM_WRITE_FORMAT.
SINK_FORMATS = {
    "remote_write": ("prometheus remote write", "snappy"),
    "import": ("json lines, one per series", "none"),
}


def _body(fmt: str, events: list[Any], tag: str) -> bytes:
    """``events`` in one of :data:`CEILING_FORMATS`, each series labelled ``bench=<tag>``."""
    if fmt == "json lines, one per sample":
        return b"".join(
            orjson.dumps(line | {"metric": {**line["metric"], "bench": tag}}) + b"\n"
            for event in events
            for line in event_lines(event)
        )
    if fmt == "prometheus text":
        out = []
        for event in events:
            for line in event_lines(event):
                metric = dict(line["metric"])
                name = metric.pop("__name__")
                metric["bench"] = tag
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in metric.items())
                value, timestamp = line["values"][0], line["timestamps"][0]
                out.append(f"{name}{{{labels}}} {value!r} {timestamp}\n")
        return "".join(out).encode()
    if fmt == "prometheus remote write":
        return _write_request(events, tag)
    series: dict[bytes, tuple[list[float], list[int]]] = {}
    for event in events:
        for line in event_lines(event):
            key = orjson.dumps({**line["metric"], "bench": tag})
            values, timestamps = series.setdefault(key, ([], []))
            values += line["values"]
            timestamps += line["timestamps"]
    return b"".join(
        b'{"metric":'
        + key
        + b',"values":'
        + orjson.dumps(values)
        + b',"timestamps":'
        + orjson.dumps(timestamps)
        + b"}\n"
        for key, (values, timestamps) in series.items()
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _write_request(events: list[Any], tag: str) -> bytes:
    """A remote-write ``WriteRequest``: one ``TimeSeries`` per series of ``events``."""
    series: dict[tuple[tuple[str, str], ...], list[bytes]] = {}
    for event in events:
        for line in event_lines(event):
            labels = tuple(sorted({**line["metric"], "bench": tag}.items()))
            # Sample: double value = 1, int64 timestamp = 2.
            sample = b"\x09" + struct.pack("<d", line["values"][0])
            sample += b"\x10" + _varint(line["timestamps"][0])
            series.setdefault(labels, []).append(_field(2, sample))
    out = []
    for labels, samples in series.items():
        encoded = b"".join(
            _field(1, _field(1, name.encode()) + _field(2, value.encode()))
            for name, value in labels
        )
        out.append(_field(1, encoded + b"".join(samples)))
    return b"".join(out)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _aggregates(rows: int) -> list[WindowAggregate]:
    """``rows`` WindowAggregates of a simulated fleet, computed by hoststream's aggregator."""
    aggregator = WindowAggregator(("1m",), grace_ms=0, metrics=StreamMetrics(CollectorRegistry()))
    fleet = SimulatedFleet(HOSTS, seed=11)
    states: dict[tuple[str, str], Any] = {}
    out: list[WindowAggregate] = []
    start_ms = (int(time.time() * 1000) - 6 * 3_600_000) // 60_000 * 60_000
    tick = 0
    while len(out) < rows:
        for event in fleet.events(start_ms + tick * 10_000):
            key = (event.host, event.family)
            state = states.get(key) or states.setdefault(
                key, aggregator.new_state(event.host, event.family)
            )
            out += aggregator.add(state, event).aggregates
        tick += 1
    return out[:rows]


def _sql(settings: Any, factor: float) -> tuple[dict[str, Any], dict[str, float], list[str]]:
    rows = max(1000, int(SQL_ROWS * factor))
    aggregates = _aggregates(rows)
    dsn = settings.sql_dsn.get_secret_value()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    batch_size = BatchPolicy().max_records
    records: list[SinkRecord[Any]] = [
        SinkRecord("bench", 0, i, None, None, a) for i, a in enumerate(aggregates)
    ]
    sink = SqlSink(dsn, schema=schema)
    try:
        sink.migrate()
        started = time.monotonic()
        for i in range(0, len(records), batch_size):
            refused = sink.write(records[i : i + batch_size])
            if refused:
                raise SystemExit(f"the SQL sink refused {len(refused)} rows: {refused[0].reason}")
        bulk_s = time.monotonic() - started
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            stored = conn.execute("SELECT count(*) FROM window_aggregates").fetchone()
            conn.execute("TRUNCATE window_aggregates")
            statement = upsert_statement("window_aggregates", 1)
            started = time.monotonic()
            for aggregate in aggregates:
                conn.execute(statement, aggregate_row(aggregate))
            single_s = time.monotonic() - started
    finally:
        sink.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    figures = {
        "rows": rows,
        "rows_stored_by_sink": stored[0] if stored else None,
        "bulk_rows_per_s": rows / bulk_s,
        "bulk_seconds": round(bulk_s, 2),
        "row_at_a_time_rows_per_s": rows / single_s,
        "row_at_a_time_seconds": round(single_s, 2),
    }
    ratios = {"sql_bulk_vs_row_at_a_time": single_s / bulk_s}
    notes = [
        f"SQL: {rows:,} 1-minute WindowAggregates of {HOSTS} simulated hosts computed by "
        f"streams.aggregator; bulk = SqlSink.write over batches of {batch_size} "
        "(COPY into a temporary staging table, then one INSERT ... SELECT ... ON CONFLICT, "
        "one transaction per batch, conversion to rows included); row at a time = the same "
        "upsert from a one-row VALUES list, one execute per row in autocommit (psycopg "
        "prepares it after 5 uses), into the emptied table",
    ]
    return figures, ratios, notes


#: Each part of the suite: its ``BENCH_SINKS`` name, figures key and ratio prefix.
PARTS = (("vm", "victoriametrics", "vm_"), ("sql", "sql", "sql_"))


def _carry_over(
    parts: list[str], figures: dict[str, Any], ratios: dict[str, float], notes: list[str]
) -> None:
    """A part not run this time keeps the figures of the results file, marked as earlier.

    ``BENCH_SINKS=vm`` must not erase the SQL figures (or the other way round).
    """
    path = RESULTS / "sinks.json"
    if not path.exists():
        return
    earlier = json.loads(path.read_text())
    for part, key, prefix in PARTS:
        if part in parts or key not in earlier.get("figures", {}):
            continue
        figures[key] = earlier["figures"][key]
        ratios.update({k: v for k, v in earlier.get("ratios", {}).items() if k.startswith(prefix)})
        commit = (earlier.get("code") or {}).get("commit")
        notes.append(
            f"{key} figures carried over from the run of {earlier.get('date')}"
            f" (commit {commit}), not measured in this run"
        )


def run(env: dict[str, str]) -> list[Result]:
    factor = scale()
    parts = os.environ.get("BENCH_SINKS", "vm,sql").split(",")
    prefix = f"benchsnk{uuid.uuid4().hex[:6]}."
    settings = settings_for(env, topic_prefix=prefix)
    figures: dict[str, Any] = {}
    ratios: dict[str, float] = {}
    notes: list[str] = []
    panels: list[tuple[str, list[str], list[float], str]] = []
    data: list[str] = []
    if "vm" in parts:
        vm_figures, vm_ratios, vm_notes = _vm(settings, factor)
        figures["victoriametrics"] = vm_figures
        ratios.update(vm_ratios)
        notes += vm_notes
        data.append(f"VM: {vm_figures['data']}")
        panels.append(
            (
                "VictoriaMetrics, samples/s",
                [
                    "hoststream VM sink",
                    "the same, no write-ahead",
                    "bare /api/v1/import (ceiling)",
                ],
                [
                    vm_figures["hoststream_sink"]["samples_per_s"],
                    vm_figures["hoststream_sink_without_write_ahead"]["samples_per_s"],
                    vm_figures["bare_import"]["samples_per_s"],
                ],
                "samples per second",
            )
        )
    if "sql" in parts:
        sql_figures, sql_ratios, sql_notes = _sql(settings, factor)
        figures["sql"] = sql_figures
        ratios.update(sql_ratios)
        notes += sql_notes
        data.append(f"SQL: {sql_figures['rows']:,} window aggregates")
        panels.append(
            (
                "PostgreSQL, rows/s",
                ["SqlSink bulk upserts", "row-at-a-time upserts"],
                [sql_figures["bulk_rows_per_s"], sql_figures["row_at_a_time_rows_per_s"]],
                "rows per second",
            )
        )
    _carry_over(parts, figures, ratios, notes)
    result = Result(
        "sinks",
        "VictoriaMetrics sink over pre-loaded metric topics vs bare /api/v1/import of the "
        "same samples; SQL sink bulk upserts vs row-at-a-time upserts",
        "; ".join(data),
        figures=figures,
        ratios=ratios,
        notes=[*notes, f"scale {factor:g} (BENCH_SCALE); {load_note()}; {code_version()}"],
    )
    panels_plot(result.name, "Sinks, higher is better", panels)
    return [result]

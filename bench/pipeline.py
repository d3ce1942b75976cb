"""The whole pipeline, co-located: the largest simulated fleet it sustains.

For each configuration (the default windows 1m and 5m; the same with a 10s
window added; the default windows with two stream workers and two instances of
each sink), the stream processor (``hoststream stream --windows ... --grace 2``,
alert rules on) and the VictoriaMetrics, SQL and alert sinks run as
``hoststream run`` starts them, each its own process with its own ``/metrics``.
A simulated fleet (``hoststream produce --simulate-hosts N --interval 10
--speedup 1``: event time runs with the wall clock) then produces for a probe's
time at each size of a search:

- coarse: from :data:`START_HOSTS`, doubling while the pipeline keeps up;
- fine: :data:`REFINE_STEPS` bisections between the last size sustained and the
  first one not;
- confirmation: one run of :data:`CONFIRM_S` at the size found (one fifth
  smaller, at most twice, if it fails).

Every probe starts from an empty pipeline: its consumers are started for it,
on a topic prefix of their own, and stopped with their topics deleted after
it. A backlog, or windows still open, from one probe can then neither slow the
next one nor be counted in its cost. All probes simulate the same fleet (one
seed), so a probe's series exist in VictoriaMetrics when an earlier probe had
as many hosts: a deployment creates its series once, and a new series costs
VictoriaMetrics far more than a sample of an existing one.
Before the producer starts, each component's CPU is measured for
:data:`IDLE_S` with no load (its fixed cost: polling, timers, scrapes).

A probe is sustained when no consumer group's backlog grows and each group's
backlog drains, once, within :data:`DRAIN_S` after the producer stops. The lag
(``hoststream_stream_consumer_lag`` / ``hoststream_sink_consumer_lag`` summed
over a group's processes, scraped each second) is a saw-tooth: each collection
tick arrives as one burst, and each window size's aggregates close in one
burst at the window's end. So the backlog is read from the lag's floor: its
minimum over the trailing :data:`FLOOR_SPAN_S` of the group (a collection
interval for the stream processor, a minute for the sinks, which get the 1m
aggregates in one burst). A pipeline that keeps up has a floor near zero
whatever the size of its bursts; one that falls behind has a floor that rises.
The floor grows when its least-squares slope over the probe's second half is
above :data:`GROWTH_SHARE` of the group's input in messages/s and it ends
above one second of input.

At the confirmed size: latency from a window's end to its aggregate record
in Kafka (the record's CreateTime), to its PostgreSQL row
(``updated_at - window_end``) and to its VictoriaMetrics series (first 1 s
poll that returns it), per window size; and the cost map, each component's CPU
seconds per million samples, from its own ``/proc/<pid>/stat`` (the services'
with their child processes), in total and above its idle cost. The simulated
producer's CPU is reported apart from the pipeline's.

``BENCH_SCALE`` multiplies the probe, confirmation and drain times (at least
60, 60 and 20 s); the fleet sizes are not scaled.

``python -m bench.pipeline --hosts N --seconds S`` runs one probe (one
configuration, one fleet size) and prints its figures; without ``--hosts`` it
runs the suite (``--start-hosts``, ``--only-default``) and saves its results.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bench.common import (
    REPO,
    Result,
    bar_plot,
    code_version,
    delete_fleet_series,
    free_port,
    hardware,
    load_note,
    panels_plot,
    percentile,
    proc_cpu_seconds,
    proc_tree_cpu_seconds,
    scale,
    settings_for,
    stack_for_env,
)
from bench.workload import delete_subjects, delete_topics, topics_with_prefix
from hoststream.producers.agent import create_metric_topics
from hoststream.schemas import FAMILIES

INTERVAL_S = 10
SPEEDUP = 1.0
GRACE_S = 2
#: The first fleet size of every search; it doubles while the pipeline keeps up.
START_HOSTS = 100
MIN_HOSTS = 10
MAX_HOSTS = 6400
#: Bisections between the last size sustained and the first one not.
REFINE_STEPS = 2
#: Probe, confirmation and drain times at scale 1. A probe sees at least two
#: minute boundaries, where the 1m aggregates arrive at the sinks in one burst.
PROBE_S = 150.0
CONFIRM_S = 300.0
DRAIN_S = 60.0
#: A probe's time beyond its load: start-up, idle measurement, drain, clean-up.
PROBE_OVERHEAD_S = 150.0
#: A probe whose simulator skipped more than this share of its ticks (and more
#: than one) did not offer its fleet's load, and is not sustained.
SKIPPED_TICKS_SHARE = 0.05
#: The CPU every component uses with no load, measured before each probe.
IDLE_S = 10.0
#: A group's backlog "grows" when the slope of its lag's floor over the second
#: half exceeds this share of its input in messages/s.
GROWTH_SHARE = 0.10
#: Over how long a group's lag floor (its trailing minimum) is taken: one burst
#: period, the collection interval for the stream processor's input and a
#: minute for the aggregates the sinks read.
FLOOR_SPAN_S = {"stream": float(INTERVAL_S)}
AGGREGATE_BURST_S = 60.0
VM_PROBE_METRIC = "node_load1"
VM_PROBE_HOSTS = 3
#: Hosts whose aggregates are read back from Kafka for the latency from a
#: window's end to its metrics.agg.<window> record (every series of theirs).
KAFKA_PROBE_HOSTS = 20
#: A window's latency counts once it ended this long after the producer's first
#: tick (or its own length, if shorter), and before the producer stopped: its
#: aggregates then hold the probe's samples, and the consumers have started.
#: A 5m window need not have begun inside a 300 s confirmation to count.
LATENCY_FROM_S = 60


def _latency_counts(end_s: float, size_s: float, first_s: float, cutoff_s: float) -> bool:
    """Whether a window of ``size_s`` that ended at ``end_s`` counts for the latency figures."""
    return first_s + min(size_s, LATENCY_FROM_S) <= end_s <= cutoff_s


#: (label, --windows, stream workers = instances of each sink)
CONFIGURATIONS = (
    ("default windows 1m,5m", "1m,5m", 1),
    ("with a 10s window: 10s,1m,5m", "10s,1m,5m", 1),
    ("default windows, 2 workers per group", "1m,5m", 2),
)
#: The configurations whose search ends in a confirmation run (the scale-out one
#: reports the throughput its search found).
CONFIRMED = {"1m,5m/1", "10s,1m,5m/1"}
#: Each service of the local stack, as the cost map names it.
SERVICE_NAMES = {
    "kafka": "broker",
    "schema-registry": "registry",
    "victoriametrics": "victoriametrics",
    "postgres": "postgresql",
    # The local stack's observability services: not in the pipeline's path, but
    # on the same CPUs (traces and logs the components send, vmalert's rules).
    "jaeger": "jaeger (traces)",
    "victorialogs": "victorialogs (logs)",
    "vmalert": "vmalert",
    "alertmanager": "alertmanager",
}
#: The cost map's components that are not the pipeline's own.
OBSERVABILITY = {"jaeger (traces)", "victorialogs (logs)", "vmalert", "alertmanager"}

#: The producer's last line (``ProducerReport.summary``), its wrapping undone.
_REPORT = re.compile(
    r"produced (\d+) events \((\d+) samples\), acknowledged (\d+) in ([\d.]+)s: "
    r".*dropped (\d+).*ticks (\d+) \(skipped (\d+)\)"
)
_WINDOW = re.compile(r"^(\d+)([sm])$")


def window_seconds(windows: str) -> tuple[int, ...]:
    """``"10s,1m,5m"`` -> ``(10, 60, 300)``."""
    out = []
    for part in windows.split(","):
        match = _WINDOW.match(part.strip())
        if match is None:
            raise ValueError(f"window {part!r}: expected e.g. 10s or 5m")
        out.append(int(match.group(1)) * (60 if match.group(2) == "m" else 1))
    return tuple(out)


def window_label(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


@dataclass
class Proc:
    name: str
    group: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu(self) -> float:
        try:
            return proc_cpu_seconds(self.popen.pid)
        except OSError:
            return 0.0

    def scrape(self) -> str | None:
        try:
            return _scraper().get(f"http://127.0.0.1:{self.port}/metrics").text
        except httpx.HTTPError:
            return None

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@functools.cache
def _scraper() -> httpx.Client:
    """One client for every scrape: a client per request would build an SSL
    context each time, CPU the bench would take from the pipeline."""
    return httpx.Client(timeout=2.0)


def _start(name: str, group: str, args: list[str], env: dict[str, str], workdir: Path) -> Proc:
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "hoststream", *args],
            env={**env, "HOSTSTREAM_METRICS_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
    return Proc(name, group, popen, port, log)


def _stop(proc: Proc) -> None:
    if proc.alive():
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(30)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(10)


_LAG_METRICS = ("hoststream_stream_consumer_lag", "hoststream_sink_consumer_lag")


def lag_total(text: str) -> float:
    """The sum of the consumer-lag gauges' samples in a ``/metrics`` text.

    Read line by line rather than through the exposition parser: the bench scrapes
    every process each second, on the CPUs the pipeline needs.
    """
    total = 0.0
    for line in text.splitlines():
        # The prefix test is a cheap filter; then the exact name (not a longer one).
        if not line.startswith(_LAG_METRICS):
            continue
        if line.split("{", 1)[0].split(" ", 1)[0] in _LAG_METRICS:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _lag(proc: Proc) -> float | None:
    text = proc.scrape()
    return None if text is None else lag_total(text)


def floor(points: list[tuple[float, float]], span_s: float) -> list[tuple[float, float]]:
    """Each point's trailing minimum over ``span_s``, from the first point a whole
    span after the first: the backlog left between bursts. A consumer that keeps
    up brings it back to about zero in every span, however large its bursts."""
    if not points:
        return []
    first = points[0][0]
    out = []
    for t, _ in points:
        if t - first < span_s:
            continue
        out.append((t, min(v for u, v in points if t - span_s < u <= t)))
    return out


def growing_groups(
    lag_by: dict[str, list[tuple[float, float]]],
    inputs: dict[str, float],
    span_by: dict[str, float],
    since_s: float,
) -> tuple[list[str], dict[str, float], dict[str, float]]:
    """The groups whose backlog grows, each group's floor slope and its last floor.

    A group grows when the slope of its lag's floor from ``since_s`` on is above
    :data:`GROWTH_SHARE` of its input (messages/s) and its last floor is above one
    second of input (a floor about zero is no backlog, whatever its slope).
    """
    slopes: dict[str, float] = {}
    last: dict[str, float] = {}
    growing = []
    for group, points in lag_by.items():
        floored = [(t, v) for t, v in floor(points, span_by[group]) if t >= since_s]
        slopes[group] = slope(floored)
        last[group] = floored[-1][1] if floored else 0.0
        rate = max(1.0, inputs.get(group, 0.0))
        if slopes[group] > GROWTH_SHARE * rate and last[group] > rate:
            growing.append(group)
    return sorted(growing), slopes, last


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 for fewer than three."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


@dataclass
class Probe:
    hosts: int
    seed: int
    lag_by: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    vm_seen: dict[tuple[str, str, int], float] = field(default_factory=dict)


@dataclass
class Pipeline:
    """The consumers of one configuration, on a topic prefix of their own."""

    windows: str
    workers: int
    env: dict[str, str]
    workdir: Path
    services: dict[str, int]
    consumers: list[Proc] = field(default_factory=list)

    @property
    def sizes(self) -> tuple[int, ...]:
        return window_seconds(self.windows)

    def start(self, settings: Any) -> None:
        create_metric_topics(settings, FAMILIES)
        for i in range(1, self.workers + 1):
            # Each worker's Faust data directory is its own, as on separate machines.
            worker_env = {**self.env, "HOSTSTREAM_STATE_DIR": str(self.workdir / f"stream-{i}")}
            self.consumers.append(
                _start(
                    f"stream-{i}",
                    "stream",
                    ["stream", "--windows", self.windows, "--grace", str(GRACE_S)],
                    worker_env,
                    self.workdir,
                )
            )
        # The sinks subscribe by pattern: start them once the aggregate topics exist.
        deadline = time.monotonic() + 120
        prefix = self.env["HOSTSTREAM_TOPIC_PREFIX"]
        while len([t for t in topics_with_prefix(settings, prefix) if ".agg." in t]) < len(
            self.sizes
        ):
            if not self.consumers[0].alive() or time.monotonic() > deadline:
                raise SystemExit(f"pipeline: no aggregate topics:\n{self.consumers[0].tail()}")
            time.sleep(0.5)
        for kind in ("victoriametrics", "sql", "alerts"):
            for i in range(1, self.workers + 1):
                self.consumers.append(
                    _start(
                        f"sink-{kind}-{i}", f"sink-{kind}", ["sink", kind], self.env, self.workdir
                    )
                )
        deadline = time.monotonic() + 120
        while any(_lag(c) is None for c in self.consumers):
            for c in self.consumers:
                if not c.alive() or time.monotonic() > deadline:
                    raise SystemExit(f"pipeline: {c.name} did not start:\n{c.tail()}")
            time.sleep(0.5)
        time.sleep(5)  # group joins and first assignments

    def stop(self) -> None:
        for c in reversed(self.consumers):
            _stop(c)

    def lags(self) -> dict[str, float] | None:
        """Each consumer group's lag: the sum over its processes' partitions."""
        out: dict[str, float] = {}
        for c in self.consumers:
            value = _lag(c)
            if value is None:
                return None
            out[c.group] = out.get(c.group, 0.0) + value
        return out

    def check_alive(self) -> None:
        for c in self.consumers:
            if not c.alive():
                raise SystemExit(f"pipeline: {c.name} exited:\n{c.tail()}")


def _poll_vm(client: httpx.Client, vm_url: str, probe: Probe, sizes: tuple[int, ...]) -> None:
    hosts = "|".join(f"sim-s{probe.seed}-h{i:05d}" for i in range(VM_PROBE_HOSTS))
    names = "|".join(f"{VM_PROBE_METRIC}:avg_{window_label(w)}" for w in sizes)
    try:
        response = client.get(
            f"{vm_url}/api/v1/export",
            params={
                "match[]": f'{{__name__=~"{names}",instance=~"{hosts}"}}',
                "start": str(int(time.time()) - 900),
                "end": str(int(time.time()) + 600),
            },
        )
    except httpx.HTTPError:
        return
    now = time.time()
    for line in response.text.splitlines():
        if not line.strip():
            continue
        series = json.loads(line)
        name = series["metric"].get("__name__", "")
        host = series["metric"].get("instance", "")
        for ts in series.get("timestamps", []):
            probe.vm_seen.setdefault((name, host, int(ts)), now)


def _watch(
    probe: Probe,
    pipeline: Pipeline,
    until: float,
    started: float,
    client: httpx.Client,
    vm_url: str,
) -> None:
    """Scrape lag and poll VictoriaMetrics once a second until ``until`` (monotonic)."""
    while time.monotonic() < until:
        tick = time.monotonic()
        lags = pipeline.lags()
        if lags is not None:
            for group, value in lags.items():
                probe.lag_by.setdefault(group, []).append((tick - started, value))
        _poll_vm(client, vm_url, probe, pipeline.sizes)
        pipeline.check_alive()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))


def _pg_latencies(dsn: str, seed: int, first_s: float, cutoff_s: float) -> dict[str, Any]:
    """Latency (updated_at - window_end) of the probe's rows whose windows ended in it.

    Rows of the probe's fleet whose window ended in the probe are fetched; those
    :func:`_latency_counts` admits are counted.
    """
    out: dict[str, Any] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT window_size_ms, extract(epoch FROM window_start)::float8, "
            "extract(epoch FROM updated_at - window_end)::float8 FROM window_aggregates "
            "WHERE host LIKE %s AND window_end >= to_timestamp(%s) "
            "AND window_end <= to_timestamp(%s)",
            (f"sim-s{seed}-h%", first_s, cutoff_s),
        ).fetchall()
    rows = [r for r in rows if _latency_counts(r[1] + r[0] / 1000, r[0] / 1000, first_s, cutoff_s)]
    for size_ms in sorted({r[0] for r in rows}):
        lat = [r[2] for r in rows if r[0] == size_ms]
        out[window_label(size_ms // 1000)] = {
            "rows": len(lat),
            "windows": len({r[1] for r in rows if r[0] == size_ms}),
            "p50_s": round(percentile(lat, 0.5), 2),
            "p99_s": round(percentile(lat, 0.99), 2),
            "max_s": round(max(lat), 2),
        }
    return out


def _kafka_latencies(
    settings: Any, seed: int, sizes: tuple[int, ...], first_s: float, cutoff_s: float
) -> dict[str, Any]:
    """Latency from a window's end to its aggregate record in Kafka, per window size.

    A record's timestamp is its CreateTime, stamped when the stream processor
    produced it: the aggregates of the first :data:`KAFKA_PROBE_HOSTS` hosts
    (the record key is the host) whose windows ended while the producer ran.
    (The source events' CreateTime is their own timestamp, set by the
    producer, so it says nothing of when they reached Kafka.)
    """
    from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

    from hoststream.kafka import client_config
    from hoststream.schemas import WindowAggregate, codec_for
    from hoststream.streams.windows import WindowSize
    from hoststream.topics import aggregate_topic

    wanted = {f"sim-s{seed}-h{i:05d}".encode() for i in range(KAFKA_PROBE_HOSTS)}
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": f"bench-latency-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )

    def wanted_messages(topic: str) -> list[Message]:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: list[Message] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + 120
        while len(at_end) < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition() or 0)
                elif message.key() in wanted:
                    out.append(message)
        return out

    def figures(lat: list[float], what: str) -> dict[str, Any]:
        if not lat:
            return {what: 0}
        return {
            what: len(lat),
            "p50_s": round(percentile(lat, 0.5), 2),
            "p99_s": round(percentile(lat, 0.99), 2),
            "max_s": round(max(lat), 2),
        }

    aggregates: dict[str, Any] = {}
    try:
        decode = codec_for(settings, WindowAggregate).deserializer
        for w in sizes:
            lat = []
            for message in wanted_messages(aggregate_topic(settings, WindowSize(w * 1000))):
                end_s = decode(message.value()).window_end / 1000
                if _latency_counts(end_s, w, first_s, cutoff_s):
                    lat.append(message.timestamp()[1] / 1000 - end_s)
            aggregates[window_label(w)] = figures(lat, "records")
    finally:
        consumer.close()
    return aggregates


def _vm_latencies(
    probe: Probe, sizes: tuple[int, ...], first_s: float, cutoff_s: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for w in sizes:
        name = f"{VM_PROBE_METRIC}:avg_{window_label(w)}"
        lat = [
            seen - ts / 1000
            for (metric, _host, ts), seen in probe.vm_seen.items()
            if metric == name and _latency_counts(ts / 1000, w, first_s, cutoff_s)
        ]
        out[window_label(w)] = (
            {
                "points": len(lat),
                "p50_s": round(percentile(lat, 0.5), 2),
                "p99_s": round(percentile(lat, 0.99), 2),
            }
            if lat
            else {"points": 0}
        )
    return out


@dataclass
class Context:
    """What every probe of one configuration shares."""

    windows: str
    workers: int
    env: dict[str, str]
    services: dict[str, int]
    client: httpx.Client
    factor: float
    #: The simulated fleet of every probe: hosts ``sim-s<seed>-h<n>``, its first
    #: ``hosts`` of them in a probe. One fleet for all probes, so a probe's series
    #: exist in VictoriaMetrics already when an earlier probe had as many hosts:
    #: a deployment creates its series once, and creating them costs far more
    #: than appending to them.
    seed: int = field(default_factory=lambda: random.randint(10_000, 999_000))
    #: The most hosts a probe has had so far (whose series exist).
    warm_hosts: int = 0


def _cpu_now(pipeline: Pipeline, extra: tuple[Proc, ...] = ()) -> dict[str, float]:
    """CPU seconds so far of each consumer (and ``extra``) process and each service tree."""
    out = {c.name: c.cpu() for c in (*extra, *pipeline.consumers)}
    out.update(
        {SERVICE_NAMES[n]: proc_tree_cpu_seconds(pid) for n, pid in pipeline.services.items()}
    )
    return out


def run_probe(ctx: Context, hosts: int, seconds: float) -> dict[str, Any]:
    """One probe on an empty pipeline: consumers started for it on a topic prefix and a
    fleet of their own, an idle measurement, the load, the drain; then everything of
    it stopped and its topics deleted."""
    prefix = f"benchpipe{uuid.uuid4().hex[:6]}."
    env = {**ctx.env, "HOSTSTREAM_TOPIC_PREFIX": prefix, "HOSTSTREAM_LOG_LEVEL": "WARNING"}
    settings = settings_for(env)
    seed = ctx.seed
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    pipeline = Pipeline(ctx.windows, ctx.workers, env, workdir, ctx.services)
    try:
        began = time.monotonic()
        pipeline.start(settings)
        start_up_s = time.monotonic() - began
        figures = _load(ctx, pipeline, settings, seed, hosts, seconds, start_up_s)
        ctx.warm_hosts = max(ctx.warm_hosts, hosts)
        return figures
    finally:
        pipeline.stop()
        delete_topics(settings, topics_with_prefix(settings, prefix))
        delete_subjects(settings, prefix)
        shutil.rmtree(workdir, ignore_errors=True)


def _load(
    ctx: Context,
    pipeline: Pipeline,
    settings: Any,
    seed: int,
    hosts: int,
    seconds: float,
    start_up_s: float,
) -> dict[str, Any]:
    vm_url = settings.vm_url.rstrip("/")
    dsn = settings.sql_dsn.get_secret_value()
    probe = Probe(hosts, seed)
    # The fixed cost: every component running, nothing produced.
    backlog = pipeline.lags() or {}
    idle0, idle_t0 = _cpu_now(pipeline), time.monotonic()
    time.sleep(IDLE_S)
    idle_wall = time.monotonic() - idle_t0
    idle_share = {k: (v - idle0[k]) / idle_wall for k, v in _cpu_now(pipeline).items()}
    load_before = os.getloadavg()[0]
    producer = _start(
        f"producer-{hosts}",
        "producer",
        [
            "produce",
            "--simulate-hosts",
            str(hosts),
            "--seed",
            str(seed),
            "--interval",
            str(INTERVAL_S),
            "--speedup",
            str(SPEEDUP),
        ],
        pipeline.env,
        pipeline.workdir,
    )
    deadline = time.monotonic() + 60
    while producer.scrape() is None:
        if not producer.alive() or time.monotonic() > deadline:
            raise SystemExit(f"pipeline: the producer did not start:\n{producer.tail()}")
        time.sleep(0.05)
    # The producer reads on the aligned instants: windows from the first one on are whole.
    first_tick_s = math.ceil(time.time() / INTERVAL_S) * INTERVAL_S
    started = time.monotonic()
    cpu0 = _cpu_now(pipeline, (producer,))
    busy0, bench0 = _machine_busy(), proc_cpu_seconds(os.getpid())
    _watch(probe, pipeline, started + seconds, started, ctx.client, vm_url)
    wall = time.monotonic() - started
    machine = (_machine_busy() - busy0) / wall
    bench_share = (proc_cpu_seconds(os.getpid()) - bench0) / wall
    cpu_s = {k: v - cpu0[k] for k, v in _cpu_now(pipeline, (producer,)).items()}
    stopped_s = time.time()
    _stop(producer)
    match = _REPORT.search(" ".join(producer.tail().split()))  # rich wraps the line
    if match is None:
        raise SystemExit(f"pipeline: no producer report:\n{producer.tail()}")
    events, samples, acknowledged, run_s, dropped, ticks, skipped = match.groups()
    # What reached Kafka is the load offered: events refused or lost do not count.
    events_per_s = int(acknowledged) / float(run_s)
    samples_per_s = int(samples) * int(acknowledged) / max(1, int(events)) / float(run_s)

    # Each group's input in messages/s: metric events, and one message per aggregate
    # (a series' window: samples/s x interval / window, summed over windows). The
    # SQL sink reads the aggregates and the alert events, the alert sink only the
    # latter (a few; counted as one a second).
    aggregates_per_s = samples_per_s * sum(INTERVAL_S / w for w in pipeline.sizes)
    inputs = {
        "stream": events_per_s,
        "sink-victoriametrics": events_per_s + aggregates_per_s,
        "sink-sql": aggregates_per_s,
        "sink-alerts": 1.0,
    }
    # The backlog must drain once the load stops (a sustained probe drains in seconds).
    drain_limit = max(20.0, DRAIN_S * ctx.factor)
    # Each group must get down to about a second of input once; not all at the
    # same moment: the windows that close after the stop (a minute's aggregates
    # in one burst, when the stop falls just before a minute's end) are a new
    # burst for the sinks, not a backlog.
    drain_start = time.monotonic()
    drained_by: dict[str, float] = {}
    while time.monotonic() - drain_start < drain_limit:
        _watch(probe, pipeline, time.monotonic() + 1.0, started, ctx.client, vm_url)
        for g, points in probe.lag_by.items():
            if g not in drained_by and points and points[-1][1] <= max(1.0, inputs.get(g, 0.0)):
                drained_by[g] = time.monotonic() - drain_start
        if probe.lag_by and drained_by.keys() >= probe.lag_by.keys():
            break
    drained = bool(probe.lag_by) and drained_by.keys() >= probe.lag_by.keys()
    drained_s = max(drained_by.values(), default=0.0) if drained else drain_limit

    # A simulator that skipped ticks offered less than the fleet's load: the
    # probe shows nothing about that fleet size (the first tick, which builds
    # every host's model, may be late once).
    simulator_behind = int(skipped) > max(1, SKIPPED_TICKS_SHARE * (int(ticks) + int(skipped)))
    spans = {g: FLOOR_SPAN_S.get(g, AGGREGATE_BURST_S) for g in probe.lag_by}
    loaded = {g: [(t, v) for t, v in p if t <= wall] for g, p in probe.lag_by.items()}
    growing, slopes, last_floor = growing_groups(loaded, inputs, spans, wall / 2)
    # Windows that closed while the producer ran: their end plus grace before its last tick.
    cutoff_s = stopped_s - INTERVAL_S - GRACE_S
    samples_in_probe = samples_per_s * wall
    # The cost map names components: a group's instances add up.
    groups = {c.name: c.group for c in pipeline.consumers}

    def by_component(seconds_by_name: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, used in seconds_by_name.items():
            key = "producer (simulator)" if name == producer.name else groups.get(name, name)
            out[key] = out.get(key, 0.0) + used
        return out

    cost = by_component(cpu_s)
    idle_cost = by_component({k: v * wall for k, v in idle_share.items()})
    in_pipeline = [k for k in cost if k != "producer (simulator)" and k not in OBSERVABILITY]
    pipeline_cpu = sum(cost[k] for k in in_pipeline)
    observability_cpu = sum(v for k, v in cost.items() if k in OBSERVABILITY)

    # What the machine's CPUs would carry if the pipeline and the simulator had
    # them alone: the CPUs left after the components' idle CPU, over the CPU
    # per sample above idle. An estimate: it takes each cost per sample as fixed.
    on_machine = [k for k in cost if k not in OBSERVABILITY]
    above_idle_s = sum(max(0.0, cost[k] - idle_cost.get(k, 0.0)) for k in on_machine)
    idle_cpus = sum(idle_cost.get(k, 0.0) for k in on_machine) / wall
    samples_per_host_s = int(samples) / max(1, int(ticks) * hosts) / INTERVAL_S
    # Only once the stream processor kept up: before that, few windows closed and
    # the sinks' (and their stores') cost of the aggregates is missing.
    projected_samples_per_s = (
        ((os.cpu_count() or 1) - idle_cpus) * samples_in_probe / above_idle_s
        if above_idle_s and "stream" not in growing
        else None
    )

    def per_million(seconds_used: float) -> float:
        return round(seconds_used / samples_in_probe * 1e6, 2) if samples_in_probe else 0.0

    latency_kafka = _kafka_latencies(settings, seed, pipeline.sizes, first_tick_s, cutoff_s)
    figures: dict[str, Any] = {
        "hosts": hosts,
        "seconds": round(wall, 1),
        "samples_per_s": round(samples_per_s),
        "events_per_s": round(events_per_s),
        "producer_dropped": int(dropped),
        "producer_ticks": int(ticks),
        "producer_skipped_ticks": int(skipped),
        "start_up_seconds": round(start_up_s, 1),
        # Hosts no earlier probe had: their series are new to VictoriaMetrics.
        "hosts_with_new_series": max(0, hosts - ctx.warm_hosts),
        "lag_at_start": {k: round(v) for k, v in backlog.items()},
        "lag_floor_slope_by_group_per_s": {k: round(v, 1) for k, v in slopes.items()},
        "lag_floor_at_end": {k: round(v) for k, v in last_floor.items()},
        "input_messages_per_s": {k: round(v) for k, v in inputs.items()},
        "lag_grows_at": growing,
        "lag_max_by_group": {k: round(max(v for _, v in p)) for k, p in probe.lag_by.items()},
        "drained": drained,
        "drain_seconds": round(drained_s, 1),
        "drain_seconds_by_group": {k: round(v, 1) for k, v in drained_by.items()},
        "simulator_fell_behind": simulator_behind,
        "sustained": not growing and drained and not simulator_behind,
        "cpu_share": {k: round(v / wall, 3) for k, v in cost.items()},
        "cpu_share_idle": {k: round(v / wall, 3) for k, v in idle_cost.items()},
        "cpu_share_pipeline": round(pipeline_cpu / wall, 3),
        "cpu_share_simulator": round(cost["producer (simulator)"] / wall, 3),
        "cpu_share_observability": round(observability_cpu / wall, 3),
        "cpu_share_machine": round(machine, 3),
        # This process: the scrapes and VictoriaMetrics polls that measure the probe.
        "cpu_share_bench": round(bench_share, 3),
        # Whatever else ran on the machine meanwhile; near the CPU count, the
        # pipeline competed for the CPUs and a probe that failed says little.
        "cpu_share_unrelated": round(
            max(0.0, machine - sum(cost.values()) / wall - bench_share), 3
        ),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpu_seconds_per_million_samples": {k: per_million(v) for k, v in cost.items()},
        "cpu_seconds_per_million_samples_above_idle": {
            k: per_million(max(0.0, v - idle_cost.get(k, 0.0))) for k, v in cost.items()
        },
        "cpu_seconds_per_million_samples_pipeline": per_million(pipeline_cpu),
        "samples_per_host_per_s": round(samples_per_host_s, 2),
        "projected_alone_samples_per_s": round(projected_samples_per_s)
        if projected_samples_per_s is not None
        else None,
        "projected_alone_hosts": round(projected_samples_per_s / samples_per_host_s)
        if projected_samples_per_s is not None and samples_per_host_s
        else None,
        "latency_postgres": _pg_latencies(dsn, seed, first_tick_s, cutoff_s),
        "latency_victoriametrics": _vm_latencies(probe, pipeline.sizes, first_tick_s, cutoff_s),
        "latency_kafka": latency_kafka,
    }
    print(f"pipeline: {pipeline.windows}/{pipeline.workers}: {json.dumps(figures)}", flush=True)
    return figures


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def search(
    probe: Callable[[int, float], dict[str, Any]],
    probe_s: float,
    confirm_s: float | None,
    start_hosts: int = START_HOSTS,
    refine_steps: int = REFINE_STEPS,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Coarse (doubling up, or halving down if the first size fails), then fine
    (bisection) probes, then a confirmation run.

    A probe that is not sustained while it created new hosts' series (its
    ``hosts_with_new_series``) is run once more at the same size, and that
    second run judges the size.

    ``probe(hosts, seconds)`` runs one probe and returns its figures (with
    ``sustained``); ``confirm_s`` None skips the confirmation. With ``budget_s``,
    no probe starts that would not end within it (a probe takes its seconds plus
    about :data:`PROBE_OVERHEAD_S`); the search then reports what it has, with
    ``stopped_by_budget``.
    """
    probes: list[dict[str, Any]] = []
    deadline = None if budget_s is None else clock() + budget_s
    stopped = False

    def out_of_time(seconds: float) -> bool:
        """Whether a probe of ``seconds`` would end past the budget; it stops the search."""
        nonlocal stopped
        if deadline is not None and clock() + seconds + PROBE_OVERHEAD_S > deadline:
            stopped = True
        return stopped

    def run(hosts: int, seconds: float, phase: str) -> dict[str, Any] | None:
        if out_of_time(seconds):
            return None
        result = probe(hosts, seconds)
        probes.append({**result, "phase": phase})
        if result["sustained"] or not result.get("hosts_with_new_series"):
            return result
        # It created the series of hosts no earlier probe had: VictoriaMetrics
        # pays about ten times a value's cost for each new series, a fleet
        # onboarding at once rather than running. The size is judged again
        # with its series existing, as a running fleet's are.
        if out_of_time(seconds):
            return result
        result = probe(hosts, seconds)
        probes.append({**result, "phase": f"{phase}, series existing"})
        return result

    good, bad = 0, 0
    hosts = start_hosts
    while MIN_HOSTS <= hosts <= MAX_HOSTS:
        result = run(hosts, probe_s, "coarse")
        if result is None:
            break
        if result["sustained"]:
            good = hosts
            if bad:
                break
            hosts *= 2
        else:
            bad = hosts
            if good:
                break
            hosts //= 2
    for _ in range(refine_steps):
        if not bad:
            break
        middle = max(5, round((good + bad) / 2 / 10) * 10) if good else bad // 2
        if middle in (good, bad):
            break
        result = run(middle, probe_s, "fine")
        if result is None:
            break
        if result["sustained"]:
            good = middle
        else:
            bad = middle
    confirmed: dict[str, Any] | None = None
    if confirm_s is not None and good:
        for _ in range(3):
            result = run(good, confirm_s, "confirmation")
            if result is None:
                break
            if result["sustained"]:
                confirmed = result
                break
            good = max(5, round(good * 0.8))
    best = confirmed or max(
        (p for p in probes if p["sustained"]), key=lambda p: p["samples_per_s"], default=None
    )
    return {
        "probes": probes,
        "highest_sustained_hosts": best["hosts"] if best else None,
        "highest_sustained_samples_per_s": best["samples_per_s"] if best else 0,
        "confirmed": confirmed is not None,
        "stopped_by_budget": stopped,
        "at_highest": best,
    }


def _cleanup(settings: Any, seeds: list[int], vm_url: str, dsn: str) -> None:
    """Delete the simulated fleet's series and rows (each probe deletes its topics)."""
    if not seeds:
        return
    try:
        for seed in seeds:
            error = delete_fleet_series(vm_url, seed, MAX_HOSTS)
            if error is not None:
                print(f"pipeline: could not delete the bench series: {error}")
                break
    except httpx.HTTPError as exc:
        print(f"pipeline: could not delete the bench series: {exc}")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            patterns = [f"sim-s{s}-h%" for s in seeds]
            conn.execute("DELETE FROM window_aggregates WHERE host LIKE ANY(%s)", (patterns,))
            conn.execute("DELETE FROM alerts WHERE host LIKE ANY(%s)", (patterns,))
    except psycopg.Error as exc:
        print(f"pipeline: could not delete the bench rows: {exc}")


def _configuration(
    label: str,
    windows: str,
    workers: int,
    env: dict[str, str],
    factor: float,
    start_hosts: int,
    refine_steps: int,
    budget_s: float | None,
) -> dict[str, Any]:
    settings = settings_for(env)
    stack = stack_for_env(env)
    services = {
        st.name: st.pid for st in stack.status() if st.pid is not None and st.name in SERVICE_NAMES
    }
    confirm = f"{windows}/{workers}" in CONFIRMED
    with httpx.Client(timeout=10) as client:
        ctx = Context(windows, workers, env, services, client, factor)
        try:
            found = search(
                lambda hosts, seconds: run_probe(ctx, hosts, seconds),
                max(60.0, PROBE_S * factor),
                max(60.0, CONFIRM_S * factor) if confirm else None,
                start_hosts,
                refine_steps,
                budget_s,
            )
        finally:
            _cleanup(
                settings,
                [ctx.seed],
                settings.vm_url.rstrip("/"),
                settings.sql_dsn.get_secret_value(),
            )
    return {"label": label, "windows": windows, "workers": workers, **found}


def run(
    env: dict[str, str],
    start_hosts: int = START_HOSTS,
    configurations: tuple[tuple[str, str, int], ...] = CONFIGURATIONS,
    refine_steps: int = REFINE_STEPS,
    budget_s: float | None = None,
) -> list[Result]:
    """The suite: a search per configuration (by default all three)."""
    factor = scale()
    searches = [
        _configuration(label, windows, workers, env, factor, start_hosts, refine_steps, budget_s)
        for label, windows, workers in configurations
    ]
    by_key = {f"{s['windows']}/{s['workers']}": s for s in searches}
    default = by_key["1m,5m/1"]
    with_10s = by_key.get("10s,1m,5m/1")
    two = by_key.get("1m,5m/2")
    best = default["at_highest"]
    ratios: dict[str, float] = {}
    figures: dict[str, Any] = {
        "searches": searches,
        "capacity_hosts": default["highest_sustained_hosts"],
        "capacity_samples_per_s": default["highest_sustained_samples_per_s"],
        "capacity_confirmed": default["confirmed"],
        "search_stopped_by_budget": any(s["stopped_by_budget"] for s in searches),
    }
    if with_10s is not None:
        figures["capacity_hosts_with_10s_window"] = with_10s["highest_sustained_hosts"]
        figures["capacity_samples_per_s_with_10s_window"] = with_10s[
            "highest_sustained_samples_per_s"
        ]
    if two is not None:
        figures["throughput_samples_per_s_by_workers"] = {
            "1": default["highest_sustained_samples_per_s"],
            "2": two["highest_sustained_samples_per_s"],
        }
    cost = cost_source(searches)
    if cost is not None:
        search_of, probe = cost
        figures["cost_map_from"] = (
            f"{search_of['windows']} x{search_of['workers']} at {probe['hosts']} hosts"
        )
        figures["cpu_seconds_per_million_samples"] = probe["cpu_seconds_per_million_samples"]
        figures["cpu_seconds_per_million_samples_above_idle"] = probe[
            "cpu_seconds_per_million_samples_above_idle"
        ]
        figures["cpu_share_idle"] = probe["cpu_share_idle"]
        figures["projected_alone_samples_per_s"] = probe["projected_alone_samples_per_s"]
        figures["projected_alone_hosts"] = probe["projected_alone_hosts"]
        figures["cpu_share_unrelated_in_cost_probe"] = probe["cpu_share_unrelated"]
    if best is not None:
        figures["latency_at_capacity"] = {
            "kafka": best["latency_kafka"],
            "postgres": best["latency_postgres"],
            "victoriametrics": best["latency_victoriametrics"],
        }
        figures["cpu_share_at_capacity"] = best["cpu_share"]
        figures["cpu_share_simulator_at_capacity"] = best["cpu_share_simulator"]
        figures["cpu_share_pipeline_at_capacity"] = best["cpu_share_pipeline"]
        figures["cpu_share_machine_at_capacity"] = best["cpu_share_machine"]
        figures["load_average_at_capacity"] = best["load_average_1m"]
        figures["cpu_share_unrelated_at_capacity"] = best["cpu_share_unrelated"]
        figures["samples_per_s_per_pipeline_core"] = (
            round(best["samples_per_s"] / best["cpu_share_pipeline"])
            if best["cpu_share_pipeline"]
            else None
        )
        ratios["capacity_hosts_vs_2000_target"] = (default["highest_sustained_hosts"] or 0) / 2000
        for size, lat in best["latency_kafka"].items():
            if lat.get("records"):
                ratios[f"kafka_p99_{size}_vs_grace_plus_2s"] = lat["p99_s"] / (GRACE_S + 2)
        for size, lat in best["latency_postgres"].items():
            ratios[f"postgres_p99_{size}_vs_grace_plus_3s"] = lat["p99_s"] / (GRACE_S + 3)
        for size, lat in best["latency_victoriametrics"].items():
            if lat.get("points"):
                ratios[f"victoriametrics_p99_{size}_vs_grace_plus_3s"] = lat["p99_s"] / (
                    GRACE_S + 3
                )
    if default["highest_sustained_samples_per_s"]:
        if two is not None:
            ratios["two_workers_vs_one"] = (
                two["highest_sustained_samples_per_s"] / default["highest_sustained_samples_per_s"]
            )
        if with_10s is not None:
            ratios["with_10s_window_vs_without"] = (
                with_10s["highest_sustained_samples_per_s"]
                / default["highest_sustained_samples_per_s"]
            )
    probe_s, confirm_s = max(60.0, PROBE_S * factor), max(60.0, CONFIRM_S * factor)
    notes = [
        f"configurations: {', '.join(label for label, _, _ in configurations)}",
        f"search per configuration: from {start_hosts} simulated hosts, doubling while sustained "
        f"(halving while not, if the first size is not) with {probe_s:.0f} s probes, then "
        f"{refine_steps} bisections, then one {confirm_s:.0f} s "
        "confirmation at the size found (one fifth smaller if it fails, at most twice; the "
        "2-worker search has no confirmation); a probe not sustained while it created new "
        "hosts' series is run once more at its size, that run judging it; --interval "
        f"{INTERVAL_S} --speedup {SPEEDUP:g}; the stream processor (--grace {GRACE_S}, alert "
        "rules on), the VictoriaMetrics, SQL and alert sinks, each its own process, co-located "
        "with the services",
        "every probe starts from an empty pipeline: its consumers are started for it on a topic "
        "prefix of their own and stopped after it, its topics deleted; all probes of a search "
        "simulate the same fleet (seed), so the series of hosts an earlier probe had exist in "
        "VictoriaMetrics (hosts_with_new_series counts the others); each component's CPU "
        f"with no load is measured for {IDLE_S:.0f} s first (cpu_share_idle)",
        "sustained: no consumer group's backlog grows and each group's backlog drains (to "
        "about one second of input, each group once) within the drain time once the producer "
        "stops. The backlog is the "
        "floor of the group's lag (the sum of its processes' hoststream_*_consumer_lag, scraped "
        "each second): its minimum over the trailing "
        f"{INTERVAL_S} s for the stream processor and {AGGREGATE_BURST_S:.0f} s for the sinks "
        "(each tick, and each window size's aggregates, arrive in one burst); it grows when its "
        "least-squares slope over the probe's second half is above "
        f"{GROWTH_SHARE:.0%} of the group's input messages/s and it ends above one second of "
        "input. A probe whose simulator skipped more than one tick and "
        f"{SKIPPED_TICKS_SHARE:.0%} of its ticks (simulator_fell_behind) did not offer its "
        "fleet's load and is not sustained either",
        "samples/s: the producer's own report (acknowledged samples / its run time)",
        "latency: Kafka: the metrics.agg.<window> record's timestamp (CreateTime, when the "
        "stream processor produced it) - window_end, every aggregate of the first "
        f"{KAFKA_PROBE_HOSTS} hosts whose window ended while the producer ran (target: p99 <= "
        "grace + 2 s); PostgreSQL: updated_at - window_end of the probe's rows whose window ended "
        "while the producer ran; VictoriaMetrics: first 1 s poll returning "
        f"{VM_PROBE_METRIC}:avg_<window> of {VM_PROBE_HOSTS} hosts - window end; a window counts "
        f"when it ended at least its length or {LATENCY_FROM_S} s, the shorter, after the "
        "producer's first tick (so a 5m window that began before the probe counts too) and "
        f"before the producer stopped; a window closes once the host's event time passes "
        f"end + grace ({GRACE_S} s)",
        "cost map: CPU seconds (utime + stime + cutime + cstime from /proc/<pid>/stat; the "
        "services' with their live child processes) over the probe, per million samples "
        "produced in it, in total and above each component's idle CPU; cpu_share_pipeline "
        "excludes the simulated producer (cpu_share_simulator) and the local stack's "
        "observability services (jaeger, victorialogs, vmalert, alertmanager: "
        "cpu_share_observability); cpu_share_bench is the bench's own process (scrapes, "
        "polls), cpu_share_unrelated whatever else ran on the machine (other work: when it "
        "nears the CPU count, the pipeline competed for the CPUs)",
        "projected_alone_samples_per_s / _hosts: an estimate of what the machine's CPUs would "
        "carry for the pipeline and the simulator alone: (CPUs - their idle CPU) / their CPU "
        "seconds per sample above idle, each cost per sample taken as constant; none when the "
        "stream processor's backlog grew (few windows closed: the aggregates' cost is missing)",
        f"scale {factor:g} (BENCH_SCALE) multiplies probe, confirmation and drain times",
        f"{load_note()}; {code_version()}",
    ]
    result = Result(
        "pipeline",
        "producer simulation -> stream processor (1m and 5m windows, alert rules; and with a "
        "10s window) -> VictoriaMetrics, SQL and alert sinks, co-located: largest fleet with "
        "every consumer group's lag flat",
        f"simulated fleets from {start_hosts} hosts, one collection every {INTERVAL_S}s, "
        "the default families",
        figures=figures,
        ratios=ratios,
        notes=notes,
    )
    plot(figures)
    return [result]


def cost_source(searches: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The probe the cost map comes from: the default configuration's confirmed (or
    highest sustained) one, else the highest sustained probe of any search."""
    if searches[0]["at_highest"] is not None:
        return searches[0], searches[0]["at_highest"]
    sustained = [(s, p) for s in searches for p in s["probes"] if p["sustained"]]
    return max(sustained, key=lambda sp: sp[1]["samples_per_s"], default=None)


def plot(figures: dict[str, Any]) -> Path:
    """The suite's charts, from its figures (also used to redraw a saved result):
    ``pipeline.png`` (searches and latency) and ``pipeline_cost.png`` (cost map)."""
    cost = figures.get("cpu_seconds_per_million_samples", {})
    if cost:
        ordered = sorted(cost.items(), key=lambda kv: -kv[1])
        bar_plot(
            "pipeline_cost",
            f"CPU seconds per million samples, {figures.get('cost_map_from')}",
            [k for k, _ in ordered],
            [v for _, v in ordered],
            "CPU seconds per million samples",
        )
    searches = figures["searches"]
    labels = [
        f"{s['windows']} x{s['workers']}: {p['hosts']}h {p['phase']}"
        f"{'' if p['sustained'] else ' (lag grows)'}"
        for s in searches
        for p in s["probes"]
    ]
    latency = figures.get("latency_at_capacity", {})
    lat_labels, lat_values = [], []
    for sink in ("kafka", "postgres", "victoriametrics"):
        for size, lat in latency.get(sink, {}).items():
            if "p99_s" in lat:
                lat_labels.append(f"{sink} {size}")
                lat_values.append(lat["p99_s"])
    return panels_plot(
        "pipeline",
        "Co-located pipeline: search for the largest sustained fleet",
        [
            (
                "Probes: samples/s",
                labels,
                [p["samples_per_s"] for s in searches for p in s["probes"]],
                "samples/s",
            ),
            (
                f"Window end -> record, stored, p99, {figures.get('capacity_hosts')} hosts",
                lat_labels or ["none"],
                lat_values or [0.0],
                f"seconds (target <= {GRACE_S + 3})",
            ),
        ],
    )


def _environment() -> dict[str, str]:
    """As ``bench.run``: a sourced stack.env's stack, else the one of HOSTSTREAM_STATE_DIR."""
    if "HOSTSTREAM_KAFKA_BOOTSTRAP" in os.environ:
        return dict(os.environ)
    env = dict(os.environ)
    return {**env, **stack_for_env(env).up()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, help="run one probe of this many simulated hosts")
    parser.add_argument("--seconds", type=float, default=PROBE_S, help="the probe's length")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the probe this many times on the same fleet (from the second on, its "
        "series exist in VictoriaMetrics)",
    )
    parser.add_argument("--windows", default="1m,5m", help="the probe's --windows")
    parser.add_argument(
        "--workers", type=int, default=1, help="stream workers and sinks of each kind"
    )
    parser.add_argument(
        "--start-hosts", type=int, default=START_HOSTS, help="the suite's first size"
    )
    parser.add_argument(
        "--refine-steps", type=int, default=REFINE_STEPS, help="the suite's bisections"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        help="each search starts no probe that would not end within this many seconds",
    )
    parser.add_argument(
        "--only-default",
        action="store_true",
        help="the suite searches the default configuration only (windows 1m,5m, one worker)",
    )
    args = parser.parse_args()
    env = _environment()
    if args.hosts is None:
        configurations = CONFIGURATIONS[:1] if args.only_default else CONFIGURATIONS
        for result in run(env, args.start_hosts, configurations, args.refine_steps, args.budget_s):
            print(f"pipeline: saved {result.save()}")
        return
    settings = settings_for(env)
    services = {
        st.name: st.pid
        for st in stack_for_env(env).status()
        if st.pid is not None and st.name in SERVICE_NAMES
    }
    with httpx.Client(timeout=10) as client:
        ctx = Context(args.windows, args.workers, env, services, client, scale())
        runs = []
        try:
            for _ in range(args.repeat):
                runs.append(run_probe(ctx, args.hosts, args.seconds))
        finally:
            _cleanup(
                settings,
                [ctx.seed],
                settings.vm_url.rstrip("/"),
                settings.sql_dsn.get_secret_value(),
            )
    print(json.dumps({"hardware": hardware(), "code": code_version(), "probes": runs}, indent=2))


if __name__ == "__main__":
    main()

"""The whole pipeline, co-located: simulated fleets of growing size through every component.

One stream processor (``hoststream stream --windows 10s,1m --grace 2 --no-alerts``),
one VictoriaMetrics sink and one SQL sink run for the whole suite, each its own
``hoststream`` process with its own ``HOSTSTREAM_METRICS_PORT``, as ``hoststream
run`` starts them, on a topic prefix of this run. Then, step by step, a
simulated fleet of growing size (``hoststream produce --simulate-hosts N``, one
seed for the whole run, so each step's fleet holds the previous one's hosts and adds
new ones) produces for a fixed time at the real clock rate (``--speedup 1``: event
time runs with the wall clock, a constant 0-10 s ahead of it, so a window's end
needs no conversion). For each step:

- samples/s: the producer's own report at exit (acknowledged samples / its run time);
- consumer lag: every second, ``hoststream_stream_consumer_lag`` and
  ``hoststream_sink_consumer_lag`` summed over partitions, scraped from each of the
  three consumers' ``/metrics``; a least-squares slope of each (smoothed over one
  collection interval) over the second half of the step says whether it grows;
- latency to PostgreSQL: ``updated_at - window_end`` of this step's hosts' rows
  in ``window_aggregates``, read after the step (and a short drain);
- latency to VictoriaMetrics: ``node_load1:avg_10s`` of three of the step's
  hosts is exported every second; a window's latency is the first poll that saw
  its point minus the window's end (so it is rounded up to the poll period);
- CPU: each process' user + system CPU seconds over the step / wall seconds, the
  same for the local services (with their child processes), and the machine's.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    REPO,
    RESULTS,
    Result,
    code_version,
    free_port,
    load_note,
    panels_plot,
    percentile,
    scale,
    settings_for,
)
from bench.workload import delete_subjects, delete_topics, topics_with_prefix
from hoststream.producers.agent import create_metric_topics
from hoststream.schemas import FAMILIES
from hoststream.stack import Stack

#: Simulated fleet sizes at scale 1.
HOSTS = (50, 100, 200, 500)
INTERVAL_S = 10
SPEEDUP = 1.0
STEP_S = 50.0
#: After a step, how long to wait for the consumers to catch up before reading latencies.
DRAIN_S = 12.0
WINDOWS = "10s,1m"
WINDOW_SECONDS = (10, 60)
GRACE_S = 2
#: A step's lag "grows" when its slope over the second half exceeds this share of
#: the messages/s produced (the gauges move in 5 s steps, so a flat lag is noisy).
GROWTH_SHARE = 0.10
VM_PROBE_METRIC = "node_load1:avg_10s"
VM_PROBE_HOSTS = 3

_REPORT = re.compile(
    r"produced (\d+) events \((\d+) samples\) in ([\d.]+)s: .*dropped (\d+).*ticks (\d+) "
    r"\(skipped (\d+)\)"
)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    cpu0: float = 0.0

    def cpu(self) -> float:
        times = psutil.Process(self.popen.pid).cpu_times()
        return times.user + times.system

    def scrape(self) -> str | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2.0).text
        except httpx.HTTPError:
            return None

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@dataclass
class Step:
    hosts: int
    seed: int
    lag: list[tuple[float, float]] = field(default_factory=list)  # (seconds, total lag)
    lag_by: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    vm_seen: dict[tuple[str, int], float] = field(default_factory=dict)  # first poll seeing it


def _tree_cpu(pids: dict[str, int]) -> dict[str, dict[int, float]]:
    """CPU seconds of each named process and of its children, by pid."""
    out: dict[str, dict[int, float]] = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        out[name] = {}
        for proc in procs:
            try:
                times = proc.cpu_times()
                out[name][proc.pid] = times.user + times.system
            except psutil.Error:
                pass
    return out


def _tree_share(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], wall: float
) -> dict[str, float]:
    """CPU share over ``wall`` of what ran at both ends (short-lived children are missed)."""
    return {
        name: round(
            sum(cpu - before[name][pid] for pid, cpu in procs.items() if pid in before[name])
            / wall,
            3,
        )
        for name, procs in after.items()
        if name in before
    }


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _start(name: str, args: list[str], env: dict[str, str], workdir: Path) -> Proc:
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
    return Proc(name, popen, port, log)


def _stop(proc: Proc) -> None:
    if proc.alive():
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(30)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(10)


def _lag(proc: Proc) -> float | None:
    text = proc.scrape()
    if text is None:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("hoststream_stream_consumer_lag", "hoststream_sink_consumer_lag"):
                total += sample.value
    return total


def _smoothed(points: list[tuple[float, float]], span_s: float) -> list[tuple[float, float]]:
    """Each point's trailing mean over ``span_s``: over one collection interval, it
    removes the saw-tooth of a tick's burst being produced and consumed."""
    out = []
    for t, _ in points:
        recent = [v for u, v in points if t - span_s < u <= t]
        out.append((t, sum(recent) / len(recent)))
    return out


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 for fewer than three."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def _poll_vm(client: httpx.Client, vm_url: str, step: Step) -> None:
    hosts = "|".join(f"sim-s{step.seed}-h{i:05d}" for i in range(VM_PROBE_HOSTS))
    try:
        response = client.get(
            f"{vm_url}/api/v1/export",
            params={
                "match[]": f'{VM_PROBE_METRIC}{{instance=~"{hosts}"}}',
                "start": str(int(time.time()) - 600),
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
        host = series["metric"].get("instance", "")
        for ts in series.get("timestamps", []):
            step.vm_seen.setdefault((host, int(ts)), now)


def _watch(
    step: Step,
    consumers: list[Proc],
    until: float,
    started: float,
    client: httpx.Client,
    vm_url: str,
) -> None:
    """Scrape lag and poll VictoriaMetrics once a second until ``until`` (monotonic)."""
    while time.monotonic() < until:
        tick = time.monotonic()
        lags = {c.name: _lag(c) for c in consumers}
        if all(v is not None for v in lags.values()):
            step.lag.append((tick - started, sum(v for v in lags.values() if v is not None)))
            for name, value in lags.items():
                step.lag_by.setdefault(name, []).append((tick - started, value or 0.0))
        _poll_vm(client, vm_url, step)
        for c in consumers:
            if not c.alive():
                raise SystemExit(f"pipeline: {c.name} exited:\n{c.tail()}")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))


def _pg_latencies(dsn: str, seed: int, first_s: float, cutoff_s: float) -> dict[str, Any]:
    """Latency (updated_at - window_end) of the step's rows whose windows ended in the step."""
    out: dict[str, Any] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT window_size_ms, extract(epoch FROM window_start)::float8, "
            "extract(epoch FROM updated_at - window_end)::float8 FROM window_aggregates "
            "WHERE host LIKE %s AND window_start >= to_timestamp(%s) "
            "AND window_end <= to_timestamp(%s)",
            (f"sim-s{seed}-h%", first_s, cutoff_s),
        ).fetchall()
    for size_ms in sorted({r[0] for r in rows}):
        lat = [r[2] for r in rows if r[0] == size_ms]
        windows = {r[1] for r in rows if r[0] == size_ms}
        out[f"{size_ms // 1000}s" if size_ms < 60_000 else f"{size_ms // 60_000}m"] = {
            "rows": len(lat),
            "windows": len(windows),
            "p50_s": round(percentile(lat, 0.5), 2),
            "p99_s": round(percentile(lat, 0.99), 2),
            "max_s": round(max(lat), 2),
        }
    return out


def _vm_latencies(step: Step, first_s: float, cutoff_s: float) -> dict[str, Any]:
    lat = [
        seen - ts / 1000
        for (_host, ts), seen in step.vm_seen.items()
        if first_s + 10 <= ts / 1000 <= cutoff_s
    ]
    if not lat:
        return {"points": 0}
    return {
        "points": len(lat),
        "p50_s": round(percentile(lat, 0.5), 2),
        "p99_s": round(percentile(lat, 0.99), 2),
    }


def _run_step(
    hosts: int,
    seed: int,
    env: dict[str, str],
    consumers: list[Proc],
    workdir: Path,
    client: httpx.Client,
    vm_url: str,
    dsn: str,
    services: dict[str, int],
) -> dict[str, Any]:
    step = Step(hosts, seed)
    backlog = sum(v or 0.0 for v in (_lag(c) for c in consumers))
    producer = _start(
        f"producer-{hosts}",
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
        env,
        workdir,
    )
    # The producer's ticker starts as it starts serving /metrics. Its first tick is
    # stamped with the next aligned instant but taken at once, so its event time
    # leads the wall clock by ``lead_s`` (0-10 s) for the whole run.
    deadline = time.monotonic() + 60
    while producer.scrape() is None:
        if not producer.alive() or time.monotonic() > deadline:
            raise SystemExit(f"pipeline: the producer did not start:\n{producer.tail()}")
        time.sleep(0.05)
    ready_s = time.time()
    first_tick_s = math.ceil(ready_s / INTERVAL_S) * INTERVAL_S
    lead_s = first_tick_s - ready_s
    started = time.monotonic()
    cpu0 = {c.name: c.cpu() for c in (producer, *consumers)}
    services0, busy0 = _tree_cpu(services), _machine_busy()
    _watch(step, consumers, started + STEP_S, started, client, vm_url)
    wall = time.monotonic() - started
    machine = (_machine_busy() - busy0) / wall
    service_share = _tree_share(services0, _tree_cpu(services), wall)
    cpu = {name: (p.cpu() - cpu0[name]) / wall for name, p in ((producer.name, producer),)}
    cpu.update({c.name: (c.cpu() - cpu0[c.name]) / wall for c in consumers})
    stopped_s = time.time()
    _stop(producer)
    match = _REPORT.search(" ".join(producer.tail().split()))  # rich wraps the line
    if match is None:
        raise SystemExit(f"pipeline: no producer report:\n{producer.tail()}")
    events, samples, seconds, dropped, ticks, skipped = match.groups()
    events_per_s = int(events) / float(seconds)
    samples_per_s = int(samples) / float(seconds)

    # Each consumer's input in messages/s: metric events, and one message per
    # aggregate (a series' window: samples/s x interval / window, summed over windows).
    aggregates_per_s = samples_per_s * sum(INTERVAL_S / w for w in WINDOW_SECONDS)
    inputs = {
        "stream": events_per_s,
        "sink-victoriametrics": events_per_s + aggregates_per_s,
        "sink-sql": aggregates_per_s,
    }
    # Let the consumers catch up (a sustained step drains in a few seconds).
    drain_start = time.monotonic()
    while time.monotonic() - drain_start < DRAIN_S:
        _watch(step, consumers, time.monotonic() + 1.0, started, client, vm_url)
        if step.lag and step.lag[-1][1] < sum(inputs.values()):
            break  # about a second of input left
    drained_s = time.monotonic() - drain_start

    def second_half(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(t, v) for t, v in _smoothed(points, INTERVAL_S) if STEP_S / 2 <= t <= STEP_S]

    slope = _slope(second_half(step.lag))
    slopes = {name: _slope(second_half(points)) for name, points in step.lag_by.items()}
    growing = sorted(n for n, v in slopes.items() if v > GROWTH_SHARE * inputs[n])
    # Windows that closed on event time during the step: their end plus grace is
    # before the last tick (later ones close on the wall-clock timer after the stop).
    cutoff_s = stopped_s + lead_s - INTERVAL_S - GRACE_S
    figures: dict[str, Any] = {
        "hosts": hosts,
        "seed": seed,
        "samples_per_s": round(samples_per_s),
        "events_per_s": round(events_per_s),
        "producer_dropped": int(dropped),
        "producer_ticks": int(ticks),
        "producer_skipped_ticks": int(skipped),
        "step_seconds": round(wall, 1),
        "event_time_lead_s": round(lead_s, 2),
        "lag_at_start": round(backlog),
        "lag_slope_second_half_per_s": round(slope, 1),
        "lag_slope_by_consumer_per_s": {k: round(v, 1) for k, v in slopes.items()},
        "input_messages_per_s": {k: round(v) for k, v in inputs.items()},
        "lag_grows_at": growing,
        "lag_max": round(max((v for _, v in step.lag), default=0.0)),
        "lag_end_of_step": round(next((v for t, v in reversed(step.lag) if t <= wall), 0.0)),
        "lag_max_by_consumer": {k: round(max(v for _, v in p)) for k, p in step.lag_by.items()},
        "sustained": not growing,
        "drain_seconds": round(drained_s, 1),
        "drained": bool(step.lag) and step.lag[-1][1] < sum(inputs.values()),
        "cpu_share": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_share_services": service_share,
        "cpu_share_machine": round(machine, 3),
        "cpus": psutil.cpu_count(),
        "latency_postgres": _pg_latencies(dsn, seed, first_tick_s, cutoff_s),
        "latency_victoriametrics": _vm_latencies(step, first_tick_s, cutoff_s),
    }
    return figures


def _cleanup(settings: Any, prefix: str, seeds: list[int], vm_url: str, dsn: str) -> None:
    delete_topics(settings, topics_with_prefix(settings, prefix))
    delete_subjects(settings, prefix)
    for path in (settings.state_dir / "faust").glob(f"{prefix}*"):
        shutil.rmtree(path, ignore_errors=True)
    if not seeds:
        return
    try:
        # Series written a moment ago may sit in buffers, out of delete_series' reach.
        httpx.get(f"{vm_url}/internal/force_flush", timeout=60)
        alternatives = "|".join(str(s) for s in seeds)
        deleted = httpx.post(
            f"{vm_url}/api/v1/admin/tsdb/delete_series",
            params={"match[]": f'{{instance=~"sim-s({alternatives})-h.*"}}'},
            timeout=60,
        )
        if deleted.status_code >= 300:
            print(f"pipeline: could not delete the bench series: {deleted.text}")
    except httpx.HTTPError as exc:
        print(f"pipeline: could not delete the bench series: {exc}")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            patterns = [f"sim-s{s}-h%" for s in seeds]
            conn.execute("DELETE FROM window_aggregates WHERE host LIKE ANY(%s)", (patterns,))
            conn.execute("DELETE FROM alerts WHERE host LIKE ANY(%s)", (patterns,))
    except psycopg.Error as exc:
        print(f"pipeline: could not delete the bench rows: {exc}")


def _ceiling() -> tuple[float | None, str]:
    path = RESULTS / "streams.json"
    try:
        body = json.loads(path.read_text())
        return float(body["figures"]["ceiling"]["samples_per_s"]), str(body.get("date", "?"))
    except (OSError, KeyError, ValueError, TypeError):
        return None, ""


def run(env: dict[str, str]) -> list[Result]:
    factor = scale()
    sizes = sorted({max(5, round(h * factor)) for h in HOSTS})
    prefix = f"benchpipe{uuid.uuid4().hex[:6]}."
    env = {**env, "HOSTSTREAM_TOPIC_PREFIX": prefix, "HOSTSTREAM_LOG_LEVEL": "WARNING"}
    settings = settings_for(env)
    vm_url = settings.vm_url.rstrip("/")
    dsn = settings.sql_dsn.get_secret_value()
    seed = random.randint(10_000, 999_000)
    seeds: list[int] = []
    services = {
        st.name: st.pid for st in Stack(REPO / ".hoststream").status() if st.pid is not None
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    consumers: list[Proc] = []
    steps: list[dict[str, Any]] = []
    try:
        create_metric_topics(settings, FAMILIES)
        consumers.append(
            _start(
                "stream",
                ["stream", "--windows", WINDOWS, "--grace", str(GRACE_S), "--no-alerts"],
                env,
                workdir,
            )
        )
        # The sinks subscribe by pattern: start them once the aggregate topics exist.
        deadline = time.monotonic() + 90
        while len([t for t in topics_with_prefix(settings, prefix) if ".agg." in t]) < 2:
            if not consumers[0].alive() or time.monotonic() > deadline:
                raise SystemExit(f"pipeline: no aggregate topics:\n{consumers[0].tail()}")
            time.sleep(0.5)
        for kind in ("victoriametrics", "sql"):
            consumers.append(_start(f"sink-{kind}", ["sink", kind], env, workdir))
        deadline = time.monotonic() + 90
        while any(_lag(c) is None for c in consumers):
            for c in consumers:
                if not c.alive() or time.monotonic() > deadline:
                    raise SystemExit(f"pipeline: {c.name} did not start:\n{c.tail()}")
            time.sleep(0.5)
        time.sleep(5)  # group joins and first assignments
        with httpx.Client(timeout=10) as client:
            seeds.append(seed)
            for hosts in sizes:
                figures = _run_step(
                    hosts, seed, env, consumers, workdir, client, vm_url, dsn, services
                )
                steps.append(figures)
                print(f"pipeline: {json.dumps(figures)}", flush=True)
    finally:
        for c in reversed(consumers):
            _stop(c)
        _cleanup(settings, prefix, seeds, vm_url, dsn)
        shutil.rmtree(workdir, ignore_errors=True)

    sustained = [s for s in steps if s["sustained"]]
    best = max(sustained, key=lambda s: s["samples_per_s"], default=None)
    ceiling, ceiling_date = _ceiling()
    headline = best["samples_per_s"] if best else 0.0
    ratios: dict[str, float] = {}
    if best is not None:
        if ceiling:
            ratios["sustained_vs_stream_suite_ceiling"] = headline / ceiling
        top = max(steps, key=lambda s: s["samples_per_s"])
        ratios["sustained_vs_highest_produced"] = headline / top["samples_per_s"]
        pg10 = best["latency_postgres"].get("10s")
        if pg10:
            ratios["postgres_p99_vs_10s_window"] = pg10["p99_s"] / 10
        vm = best["latency_victoriametrics"]
        if vm.get("points"):
            ratios["victoriametrics_p99_vs_10s_window"] = vm["p99_s"] / 10
    figures_out: dict[str, Any] = {
        "steps": steps,
        "highest_sustained_samples_per_s": headline,
        "highest_sustained_hosts": best["hosts"] if best else None,
        "stream_suite_ceiling_samples_per_s": ceiling,
    }
    notes = [
        f"each step: a simulated fleet producing for {STEP_S:.0f}s at "
        f"--interval {INTERVAL_S} --speedup {SPEEDUP:g}; the stream processor "
        f"(--windows {WINDOWS} --grace {GRACE_S} --no-alerts), the VictoriaMetrics sink and "
        "the SQL sink run throughout, one process each, on this machine with the services",
        "samples/s: the producer's own report (acknowledged samples / its run time); "
        "lag: the consumer-lag gauges (hoststream_stream_consumer_lag, "
        "hoststream_sink_consumer_lag) of each consumer, scraped each second ("
        f"refreshed by the components every 5 s): a step is sustained when, for each consumer, "
        "the least-squares slope of its lag (each point the mean of the trailing "
        f"{INTERVAL_S} s, one collection interval, to remove the per-tick saw-tooth) over "
        "the second half of the step is at most "
        f"{GROWTH_SHARE:.0%} of its input in messages/s (lag_grows_at names the others); "
        "messages are metric events (stream, VM sink) and window aggregates, one per series "
        "and window (both sinks, on metrics.agg.*), estimated from the samples/s; "
        "a step after an unsustained one starts with its backlog (lag_at_start)",
        "PostgreSQL latency: updated_at - window_end of the step's hosts' rows in "
        "window_aggregates whose window ended while the producer ran (end + grace before its "
        "last tick), read after the step and a drain of up to "
        f"{DRAIN_S:.0f}s; rows still queued then are missing, so for an unsustained step it is "
        "a lower bound (see rows and windows); a 10s window closes when the host's next "
        "event past end + grace arrives, i.e. the tick 10 s after its end (paced over 9 s); "
        "the producer stamps each collection with the next aligned instant but takes it "
        "event_time_lead_s earlier (its first tick fires at once), so a window's end in event "
        "time is that much later than the wall-clock instant its data was complete: add it "
        "for latency from the real end",
        f"VictoriaMetrics latency: {VM_PROBE_METRIC} of {VM_PROBE_HOSTS} of the step's hosts "
        "exported every second; first poll that returned a window's point - window_end "
        "(so up to 1 s late, and VictoriaMetrics' own flush delay included)",
        "cpu_share: each process' user + system CPU seconds over the step / wall seconds "
        "(1.0 = one CPU); cpu_share_services: the same for the local services' processes and "
        "their children; cpu_share_machine: all CPUs' busy time / wall seconds (other work on "
        "the shared machine included)",
        "one fleet seed for the run: a step's fleet is the previous step's hosts plus new ones "
        "(hosts sim-s<seed>-h00000 ...), so VictoriaMetrics registers new series only for the "
        "added hosts; latencies count only windows that started in the step",
        "tracing as `hoststream run` has it (OTLP to the local Jaeger, from stack.env)",
    ]
    if ceiling:
        notes.append(f"stream suite ceiling from bench/results/streams.json ({ceiling_date})")
    notes.append(f"scale {factor:g} (BENCH_SCALE); {load_note()}; {code_version()}")
    result = Result(
        "pipeline",
        "producer simulation -> stream processor (10s and 1m windows) -> VictoriaMetrics and "
        "SQL sinks, co-located, at growing fleet sizes",
        f"fleets of {', '.join(str(s) for s in sizes)} simulated hosts, {STEP_S:.0f}s each, "
        f"one collection every {INTERVAL_S}s, 5 families (~350 samples per host per tick)",
        figures=figures_out,
        ratios=ratios,
        notes=notes,
    )
    plot(steps)
    return [result]


def _worst_growth(step: dict[str, Any]) -> float:
    """The largest lag slope of the step's consumers, in % of that consumer's input."""
    inputs = step["input_messages_per_s"]
    return max(
        100 * slope / inputs[name] if inputs[name] else 0.0
        for name, slope in step["lag_slope_by_consumer_per_s"].items()
    )


def plot(steps: list[dict[str, Any]]) -> Path:
    """The suite's chart, from its step figures (also used to redraw a saved result)."""
    labels = [f"{s['hosts']} hosts{'' if s['sustained'] else ' (lag grows)'}" for s in steps]
    return panels_plot(
        "pipeline",
        "Co-located pipeline at growing fleet sizes",
        [
            ("Samples/s produced", labels, [s["samples_per_s"] for s in steps], "samples/s"),
            (
                "Fastest-growing consumer lag, 2nd half",
                labels,
                [_worst_growth(s) for s in steps],
                "% of its input messages/s (sustained: <= 10)",
            ),
            (
                "10s window end -> PostgreSQL row, p99",
                labels,
                [s["latency_postgres"].get("10s", {}).get("p99_s", 0.0) for s in steps],
                "seconds",
            ),
        ],
    )

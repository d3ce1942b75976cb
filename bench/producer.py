"""Producer benchmarks.

1. The real psutil producer against Debian's prometheus-node-exporter scraped
   at the same interval: CPU time per collection and resident memory.
2. The simulated producer's messages/s against Kafka's own ProducerPerformance
   on the same broker, with the same producer settings and record size.

``BENCH_PRODUCER=real`` (a comma-separated list of ``real``, ``simulated``)
runs some of them.
"""

from __future__ import annotations

import compileall
import os
import re
import resource
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.common import REPO, CpuProbe, Result, bar_plot, free_port, hoststream, load_note
from hoststream.config import load_settings
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import MetricEvent, codec_for
from hoststream.stack.java import find_java

LIB = REPO / ".hoststream" / "lib"
#: The folders of hoststream's packages (``hoststream/<name>`` links to the others).
PACKAGES = ("hoststream", "producers", "schemas", "sinks", "streams", "api")


def _compile_as_installed() -> None:
    """Write the bytecode of hoststream's modules, as ``pip install`` does.

    An installed agent loads its modules' bytecode; a checkout run with
    ``PYTHONDONTWRITEBYTECODE`` compiles them at every start instead, and the
    compiler's leftovers stay in the agent's heap (1.7 MiB more after its imports).
    """
    for package in PACKAGES:
        compileall.compile_dir(REPO / package, quiet=1)


def real_host_vs_node_exporter(
    env: dict[str, str], seconds: float = 600, interval: float = 1.0
) -> Result:
    """The producer and node_exporter measured over the same span, side by side.

    Both run at once: the producer collecting every ``interval`` and
    node_exporter scraped every ``interval``, so the load of a shared machine
    weighs on both alike and the ratio holds even when the absolute figures move.
    The span is ten minutes by default because resident memory is read at its
    end: a long-running agent's memory after it settled, not its start-up figure.
    """
    binary = shutil.which("prometheus-node-exporter")
    if binary is None:
        raise SystemExit(
            "prometheus-node-exporter is not installed: apt-get install prometheus-node-exporter"
        )
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    metrics_port = free_port()
    _compile_as_installed()
    # The agent as installed by default: without a trace or log endpoint
    # (node_exporter exports neither), even when the stack's environment names
    # them; OTLP log export would add OpenTelemetry's SDK (about 9 MiB).
    agent_env = {
        name: value
        for name, value in env.items()
        if name
        not in (
            "HOSTSTREAM_OTLP_ENDPOINT",
            "HOSTSTREAM_OTLP_LOGS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        )
    }
    proc = hoststream(
        ["produce", "--interval", str(interval), "--duration", str(seconds + 60)],
        {
            **agent_env,
            "HOSTSTREAM_TOPIC_PREFIX": prefix,
            "HOSTSTREAM_METRICS_PORT": str(metrics_port),
        },
    )
    port = free_port()
    exporter = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        first = ""
        for _ in range(50):
            try:
                first = httpx.get(url, timeout=5).text
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        series = sum(1 for line in first.splitlines() if line and not line.startswith("#"))
        # Past the producer's start-up (imports, topics, schemas): two ticks acknowledged.
        _wait_for_events(metrics_port, 10, proc)
        ours_probe, theirs_probe = CpuProbe(proc.pid), CpuProbe(exporter.pid)
        ours_probe.start()
        theirs_probe.start()
        scrapes = 0
        next_at = time.monotonic()
        while time.monotonic() - theirs_probe.t0 < seconds:
            httpx.get(url, timeout=5)
            scrapes += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        cpu_s, wall_s, rss_mib = ours_probe.stop()
        their_cpu_s, _, their_rss_mib = theirs_probe.stop()
        load = load_note()
    finally:
        exporter.send_signal(signal.SIGTERM)
        exporter.wait(10)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    ours = {
        "cpu_ms_per_collection": 1000 * cpu_s / (wall_s / interval),
        "rss_mib": rss_mib,
    }
    theirs = {
        "cpu_ms_per_collection": 1000 * their_cpu_s / scrapes,
        "rss_mib": their_rss_mib,
        "series": series,
    }

    result = Result(
        "producer_real_host",
        f"real-host producer at {interval:g}s for {seconds:g}s beside prometheus-node-exporter "
        f"scraped at the same interval over the same span",
        f"{int(seconds / interval)} collections of this host (5 families) / {scrapes} scrapes",
        figures={"hoststream": ours, "node_exporter": theirs},
        ratios={
            "cpu_per_collection_vs_node_exporter": ours["cpu_ms_per_collection"]
            / theirs["cpu_ms_per_collection"],
            "rss_vs_node_exporter": ours["rss_mib"] / theirs["rss_mib"],
        },
        notes=[
            "hoststream's figure includes Avro encoding, validation and producing to Kafka "
            "(librdkafka threads included), tracing off and the default collectors;",
            f"node_exporter's includes serving {series} series over HTTP "
            "with its default collectors (Debian's, systemd's failing one included);",
            f"resident memory of both read after {seconds / 60:g} min of collection",
            "the agent runs as installed: its modules' bytecode compiled beforehand (pip does at "
            "install), no trace or log endpoint",
            load,
        ],
    )
    bar_plot(
        result.name,
        "CPU per collection (ms), lower is better",
        ["hoststream produce", "node_exporter scrape"],
        [ours["cpu_ms_per_collection"], theirs["cpu_ms_per_collection"]],
        "ms of CPU per collection",
    )
    return result


def _wait_for_events(port: int, events: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            text = ""
        done = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("hoststream_producer_events_total{")
        )
        if done >= events:
            return
        time.sleep(0.5)
    raise SystemExit("the producer did not start: no events acknowledged within 120 s")


def _mean_event_size(hosts: int) -> int:
    settings = load_settings()
    encode = codec_for(
        settings.model_copy(update={"schema_registry_url": None}), MetricEvent
    ).serializer
    events = list(SimulatedFleet(hosts, seed=3).events(1_700_000_000_000, 10_000))
    return int(sum(len(encode(e, None)) for e in events) / len(events))


@dataclass(frozen=True)
class _SimulatedRun:
    """One simulated run's figures, from the line ``hoststream produce`` ends with."""

    #: Events (and their samples) Kafka acknowledged per second, start-up included.
    events_per_s: int
    samples_per_s: int
    #: Events Kafka refused (none is expected).
    failed: int
    #: Process CPU (every process of the run) per acknowledged event.
    cpu_us_per_event: float
    summary: str


def _simulated_rate(
    env: dict[str, str], seconds: float, hosts: int, processes: int, cwd: str | None = None
) -> _SimulatedRun:
    """One simulated run as fast as it goes (``cwd``: an earlier checkout to run instead)."""
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    args = ["--simulate-hosts", str(hosts), "--speedup", "1000", "--duration", str(seconds)]
    if processes > 1:
        args += ["--processes", str(processes)]
    # `python -m` puts the working folder first on the path: run from the checkout.
    proc = hoststream(["produce", *args], {**env, "HOSTSTREAM_TOPIC_PREFIX": prefix}, cwd=cwd)
    _, err = proc.communicate(timeout=seconds + 180)
    line = re.sub(r"\s+", " ", err)
    match = re.search(r"([0-9]+) events/s, ([0-9]+) samples/s", line)
    if not match:
        raise SystemExit(f"no rate in the producer's output:\n{err[-2000:]}")
    summary = re.search(r"produced .*per tick", line)
    # An earlier checkout's line has no acknowledged count: its rate is of events queued.
    acknowledged = re.search(r"acknowledged ([0-9]+)", line)
    failed = re.search(r"failed ([0-9]+)", line)
    ticks = re.search(r"ticks ([0-9]+)", line)
    cpu = re.search(r"CPU ([0-9.]+) ms per tick", line)
    events = int(acknowledged.group(1)) if acknowledged else 0
    cpu_us = (
        1000 * float(cpu.group(1)) * int(ticks.group(1)) / events
        if cpu and ticks and events
        else float("nan")
    )
    return _SimulatedRun(
        int(match.group(1)),
        int(match.group(2)),
        int(failed.group(1)) if failed else -1,
        cpu_us,
        summary.group(0) if summary else "",
    )


@dataclass(frozen=True)
class _PerformanceRun:
    """One ProducerPerformance run's figures."""

    records_per_s: float
    #: CPU of the Java process (start-up and JIT included) per record sent.
    cpu_us_per_record: float
    summary: str


def _producer_performance(env: dict[str, str], records: int, record_size: int) -> _PerformanceRun:
    """Kafka's ProducerPerformance with hoststream's settings: its rate, CPU and summary line."""
    topic = f"bench{uuid.uuid4().hex[:6]}.producer-performance"
    java = find_java(17)
    classpath = f"{LIB / 'kafka-tools'}/*:{LIB / 'kafka'}/*"
    bootstrap = env["HOSTSTREAM_KAFKA_BOOTSTRAP"]
    subprocess.run(
        [
            str(java),
            "-cp",
            classpath,
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            bootstrap,
            "--create",
            "--topic",
            topic,
            "--partitions",
            "6",
            "--replication-factor",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    # The run is this process's only child while it runs: its CPU is the
    # children's CPU gained over it.
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    perf = subprocess.run(
        [
            str(java),
            "-Xmx512m",
            "-cp",
            classpath,
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--record-size",
            str(record_size),
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={bootstrap}",
            # hoststream's producer settings (hoststream.kafka.producer_config,
            # with EventPublisher's zstd level).
            "acks=all",
            "enable.idempotence=true",
            "compression.type=zstd",
            "compression.zstd.level=1",
            "linger.ms=50",
            "batch.size=524288",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    summary = perf.stdout.strip().splitlines()[-1]
    rate = re.search(r"([0-9.]+) records/sec", summary)
    if not rate:
        raise SystemExit(f"unexpected ProducerPerformance output: {summary}")
    return _PerformanceRun(float(rate.group(1)), 1e6 * cpu_s / records, summary)


def simulated_vs_producer_performance(
    env: dict[str, str], seconds: float = 90, hosts: int = 1000, records: int = 1_000_000
) -> Result:
    """The simulated fleet in one process and in one per CPU, between two ProducerPerformance runs.

    Each run lasts 90 s: its first tick builds every host's model and learns
    every event's layout (about 4 CPU seconds for 1,000 hosts), which took
    most of the 30 s runs this benchmark used before on a busy machine.
    ProducerPerformance runs before and after hoststream's runs, and the
    faster of the two is the ceiling: on a shared machine the load moves
    within minutes, and one run after the others alone measured the load.
    hoststream's rate counts only events Kafka acknowledged.

    ``BENCH_PREVIOUS_CODE`` (a folder holding an earlier checkout) adds a run of
    that code's simulated producer in the same conditions, for a before/after ratio.
    """
    processes = max(2, os.cpu_count() or 1)
    load_at_start = load_note()
    record_size = _mean_event_size(50)
    first = _producer_performance(env, records, record_size)
    one = _simulated_rate(env, seconds, hosts, 1)
    ours = _simulated_rate(env, seconds, hosts, processes)
    before: _SimulatedRun | None = None
    previous_code = os.environ.get("BENCH_PREVIOUS_CODE")
    if previous_code:
        before = _simulated_rate(
            {**env, "PYTHONPATH": previous_code}, seconds, hosts, processes, cwd=previous_code
        )
    previous: dict[str, object] = (
        {}
        if before is None
        else {
            "previous_code": previous_code,
            "previous_code_events_per_s": before.events_per_s,
            "previous_code_summary": before.summary,
        }
    )
    second = _producer_performance(env, records, record_size)
    theirs = max(first.records_per_s, second.records_per_s)
    # CPU per message is the figure the load moves least: the rates' ratio
    # depends on what else ran on the shared CPUs during each run.
    their_cpu_us = min(first.cpu_us_per_record, second.cpu_us_per_record)
    result = Result(
        "producer_simulated",
        f"{hosts} simulated hosts, as fast as possible (--speedup 1000), Avro via the schema "
        f"registry, vs Kafka's ProducerPerformance with the same producer settings",
        f"{ours.events_per_s * seconds:.0f} events ({ours.samples_per_s * seconds:.0f} samples) "
        f"over {seconds:g}s with {processes} processes; "
        f"ProducerPerformance {records} records of {record_size} bytes, twice",
        figures={
            "hoststream_events_per_s": ours.events_per_s,
            "hoststream_samples_per_s": ours.samples_per_s,
            "hoststream_failed_events": ours.failed,
            "hoststream_cpu_us_per_event": ours.cpu_us_per_event,
            "hoststream_processes": processes,
            "hoststream_summary": ours.summary,
            "hoststream_one_process_events_per_s": one.events_per_s,
            "hoststream_one_process_samples_per_s": one.samples_per_s,
            "hoststream_one_process_failed_events": one.failed,
            "hoststream_one_process_cpu_us_per_event": one.cpu_us_per_event,
            "hoststream_one_process_summary": one.summary,
            "producer_performance_records_per_s": theirs,
            "producer_performance_cpu_us_per_record": their_cpu_us,
            "producer_performance_before_records_per_s": first.records_per_s,
            "producer_performance_before_cpu_us_per_record": first.cpu_us_per_record,
            "producer_performance_before_summary": first.summary,
            "producer_performance_after_records_per_s": second.records_per_s,
            "producer_performance_after_cpu_us_per_record": second.cpu_us_per_record,
            "producer_performance_after_summary": second.summary,
            "load_average_at_start": load_at_start,
            **previous,
        },
        ratios={
            "events_per_s_vs_producer_performance": ours.events_per_s / theirs,
            # Above 1: hoststream spends less CPU per message than ProducerPerformance.
            "cpu_per_message_producer_performance_vs_hoststream": their_cpu_us
            / ours.cpu_us_per_event,
            "one_process_events_per_s_vs_producer_performance": one.events_per_s / theirs,
            **(
                {"events_per_s_vs_previous_code": ours.events_per_s / before.events_per_s}
                if before is not None and before.events_per_s
                else {}
            ),
        },
        notes=[
            f"hoststream's rate is of events Kafka acknowledged, and includes simulating the "
            f"fleet, Avro encoding and producing, with --processes {processes} (one process: "
            f"the one_process figures), each run {seconds:g} s from the first tick, which builds "
            "every host's model; CPU per event counts every process of the run;",
            "ProducerPerformance sends pre-made random payloads of the mean event size (Java), "
            "before and after hoststream's runs; the faster of the two is the ceiling; its CPU "
            "per record (the lower of the two) counts the Java process's start-up and JIT;",
            *(
                ["the previous code's rate is of events queued: it did not count acknowledgements"]
                if previous
                else []
            ),
            load_note(),
        ],
    )
    bar_plot(
        result.name,
        "Messages/s to one broker, higher is better",
        [
            f"hoststream simulated producer, {processes} processes",
            "hoststream simulated producer, 1 process",
            "Kafka ProducerPerformance (ceiling)",
        ],
        [ours.events_per_s, one.events_per_s, theirs],
        "messages per second",
    )
    return result


#: ``BENCH_PRODUCER`` picks the parts to run: ``real`` (ten minutes beside
#: node_exporter), ``simulated`` (the fleet against ProducerPerformance), or both.
PARTS: dict[str, Callable[[dict[str, str]], Result]] = {
    "real": real_host_vs_node_exporter,
    "simulated": simulated_vs_producer_performance,
}


def run(env: dict[str, str]) -> list[Result]:
    parts = os.environ.get("BENCH_PRODUCER", ",".join(PARTS)).split(",")
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        raise SystemExit(f"BENCH_PRODUCER: unknown part {unknown[0]!r}; known: {', '.join(PARTS)}")
    return [PARTS[part](env) for part in parts]

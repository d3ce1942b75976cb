"""Stream processing: the same pre-loaded topics aggregated over 1-minute tumbling windows.

Contenders, each a fresh consumer group reading the topics from the start, in
its own process, measured the same way: the group's committed offsets are
polled until they reach the end of every partition (or a time cap passes).
For each, its CPU seconds (user + system) per million samples and its peak
resident memory are read from the kernel when it is stopped.

1. hoststream's stream processor as it runs in production
   (``hoststream stream --windows 1m,5m``, default alert rules on).
2. A plain Faust agent with a windowed table, one update per sample
   (``bench/peers/faust_plain.py``), as Faust's documentation shows.
3. Quix Streams' tumbling-window aggregation (``bench/peers/quix_window.py``),
   from a virtualenv of its own: it does not install beside hoststream's pins.
4. Bytewax (``bench/peers/bytewax_window.py``) and Pathway
   (``bench/peers/pathway_window.py``) computing the same reduce as the Quix
   peer, each from a virtualenv of its own.
5. The ceiling: a bare confluent-kafka consumer that only decodes the Avro values.

Then hoststream's worker runs once more under py-spy for a profile, and its
state memory is measured: the worker reads a few collections of 200 and of
2,000 simulated hosts (fresh topics each), and its peak resident memory per
active series is reported, in all and at the margin between the two fleets.

``BENCH_STREAMS_BASELINE=<another checkout of hoststream>`` adds that
checkout's stream processor as a contender (``hoststream_baseline``), so a
change is measured against the code before it in the same run.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.common import (
    REPO,
    RESULTS,
    Result,
    bar_plot,
    code_version,
    load_note,
    scale,
    settings_for,
)
from bench.workload import (
    GroupProgress,
    LoadedTopics,
    delete_subjects,
    delete_topics,
    follow,
    load_metric_topics,
    topics_with_prefix,
)

#: Samples in the topics at scale 1 (the issue asks for at least two million).
FULL_SAMPLES = 2_000_000
HOSTS = 100
#: The longest one contender may run; a slower one is measured over what it did by then.
#: hoststream gets longer, so that at scale 1 it reads all two million samples.
CAP_S = 60.0
HOSTSTREAM_CAP_S = 100.0
PROFILE_S = 20
#: Fleets of the state-memory probe; the larger one is the issue's 2,000 hosts.
MEMORY_HOSTS = (200, 2000)
#: Collections each host sends in the probe: 70 s of event time, so its series hold open windows.
MEMORY_TICKS = 7
#: The probe's worker reads 2.7 million samples at 2,000 hosts: longer than the main run.
MEMORY_CAP_S = 300.0


def _launch(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)


def _usage(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, peak resident memory in MiB) of a running process."""
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    peak_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kib = int(line.split()[1])
    return times.user + times.system, peak_kib / 1024


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _measure(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    group: str,
    loaded: LoadedTopics,
    workdir: Path,
    cap_s: float,
    cwd: Path = REPO,
) -> dict[str, Any]:
    progress = GroupProgress(loaded.settings, group, loaded.topics)
    log = workdir / f"{name}.log"
    processed = workdir / f"{name}.progress"
    started = time.monotonic()
    proc = _launch(cmd, {**env, "BENCH_PROGRESS_FILE": str(processed)}, log, cwd)
    figures: dict[str, Any]
    try:
        figures = follow(progress, loaded, started, lambda: proc.poll() is None, cap_s, name)
        samples = figures["samples_done"]
    except SystemExit as exc:
        if not processed.exists():
            _stop(proc)
            raise SystemExit(f"{exc}:\n{log.read_text(errors='replace')[-3000:]}") from None
        # Its commits lag its work: measure what it says it processed.
        first, last, samples = map(float, processed.read_text().split())
        figures = {
            "samples_per_s": samples / (last - first) if last > first else 0.0,
            "samples_done": 0,
            "samples_processed_uncommitted": round(samples),
            "seconds": round(time.monotonic() - started, 1),
            "finished": False,
            "measured_by": f"its own count of processed samples: {exc}",
        }
    try:
        cpu_s, peak_mib = _usage(proc.pid)
        figures["cpu_seconds"] = round(cpu_s, 2)
        figures["cpu_seconds_per_million_samples"] = round(cpu_s * 1e6 / max(samples, 1), 2)
        figures["peak_rss_mib"] = round(peak_mib, 1)
    except (psutil.Error, OSError):
        pass  # it stopped by itself: no figures rather than wrong ones
    finally:
        _stop(proc)
        progress.close()
    return figures


def _profile(
    env: dict[str, str], app_id: str, loaded: LoadedTopics, workdir: Path
) -> tuple[list[str], Path]:
    """Run hoststream's worker under py-spy; return summary lines and the collapsed stacks."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    progress = GroupProgress(loaded.settings, app_id, loaded.topics)
    proc = _launch(_hoststream_cmd(app_id), env, workdir / "profile.log")
    raw = RESULTS / "streams_profile.txt"
    svg = RESULTS / "streams_profile.svg"
    try:
        deadline = time.monotonic() + 60
        while sum(progress.committed().values()) == 0 and time.monotonic() < deadline:
            time.sleep(0.3)
        common = ["record", "--pid", str(proc.pid), "-d", str(PROFILE_S), "--nonblocking", "-F"]
        recorders = [
            subprocess.Popen(
                [py_spy, *common, "-f", fmt, "-o", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for fmt, path in (("raw", raw), ("flamegraph", svg))
        ]
        for recorder in recorders:
            recorder.wait(PROFILE_S + 60)
    finally:
        _stop(proc)
        progress.close()
    return _summarise_profile(raw), raw


def _state_memory(env: dict[str, str], series_per_host: float, workdir: Path) -> dict[str, Any]:
    """hoststream's peak resident memory per active series, for each fleet of ``MEMORY_HOSTS``.

    An active series is one the hosts sent in a collection (every series is
    sent in each). The margin between the two fleets leaves out what does not
    grow with the fleet: the interpreter, libraries, Kafka clients' buffers.
    """
    runs: dict[str, Any] = {}
    for hosts in MEMORY_HOSTS:
        prefix = f"{env['HOSTSTREAM_TOPIC_PREFIX']}mem{hosts}."
        run_env = {**env, "HOSTSTREAM_TOPIC_PREFIX": prefix}
        settings = settings_for(run_env)
        try:
            loaded = load_metric_topics(
                settings,
                hosts=hosts,
                target_samples=round(MEMORY_TICKS * hosts * series_per_host),
            )
            group = f"{prefix}hs"
            figures = _measure(
                f"memory-{hosts}",
                _hoststream_cmd(group),
                run_env,
                group,
                loaded,
                workdir,
                MEMORY_CAP_S,
            )
        finally:
            delete_topics(settings, topics_with_prefix(settings, prefix))
            delete_subjects(settings, prefix)
            for path in (settings.state_dir / "faust").glob(f"{prefix}*"):
                shutil.rmtree(path, ignore_errors=True)
        series = loaded.total_samples // loaded.ticks
        runs[f"hosts_{hosts}"] = {
            "active_series": series,
            "peak_rss_mib": figures.get("peak_rss_mib"),
            "finished": figures["finished"],
            "bytes_per_series": round(figures["peak_rss_mib"] * 2**20 / series)
            if figures.get("peak_rss_mib")
            else None,
        }
        print(f"streams: state memory, {hosts} hosts: {runs[f'hosts_{hosts}']}", flush=True)
    small, large = (runs[f"hosts_{h}"] for h in MEMORY_HOSTS)
    if small["peak_rss_mib"] and large["peak_rss_mib"]:
        runs["bytes_per_series_at_margin"] = round(
            (large["peak_rss_mib"] - small["peak_rss_mib"])
            * 2**20
            / (large["active_series"] - small["active_series"])
        )
    return runs


def _summarise_profile(raw: Path, top: int = 8) -> list[str]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += n
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += n
    if not total:
        return ["py-spy recorded no samples"]
    lines = [f"py-spy, {total} samples over {PROFILE_S}s; most own time:"]
    lines += [f"  {100 * n / total:4.1f}% {frame}" for frame, n in own.most_common(top)]
    lines.append("most inclusive time in hoststream's code, below the batch loop:")
    ours = [
        (frame, n)
        for frame, n in inclusive.most_common()
        if any(part in frame for part in ("streams/", "schemas/")) and n < total / 2
    ]
    lines += [f"  {100 * n / total:4.1f}% {frame}" for frame, n in ours[:top]]
    return lines


def _short(frame: str) -> str:
    # "function (path/to/module.py:line)" -> "function (module dir/file.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    return f"{name} ({'/'.join(parts[-2:])})"


def _untraced(env: dict[str, str]) -> dict[str, str]:
    """``env`` without trace and log export endpoints: hoststream as installed by default."""
    endpoints = {
        "HOSTSTREAM_OTLP_ENDPOINT",
        "HOSTSTREAM_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    }
    return {k: v for k, v in env.items() if k not in endpoints}


def _hoststream_cmd(app_id: str) -> list[str]:
    # What it computes in production: 1m and 5m windows rolled up, alert rules on.
    return [sys.executable, "-m", "hoststream", "stream", "--app-id", app_id, "--windows", "1m,5m"]


QUIX_CONFLICT = (
    "quixstreams 3.28.1 (the latest) requires confluent-kafka<2.13 and pydantic<2.14, while "
    "hoststream pins confluent-kafka 2.16.1 and pydantic 2.14 (pip's resolver falls back to "
    "quixstreams 0.5.7, a different 2023 product), so it is not in the bench extra"
)


@dataclass(frozen=True)
class Peer:
    """A stream processor from PyPI run from a virtualenv of its own under ``.hoststream/``."""

    name: str  # the contender's name in the results
    title: str
    package: str  # the import name, whose __version__ is reported
    venv: str  # under .hoststream/
    module: str  # under bench.peers
    why_own_venv: str

    @property
    def python(self) -> Path:
        return REPO / ".hoststream" / self.venv / "bin" / "python"

    def interpreter(self) -> tuple[Path | None, str]:
        """Its interpreter, or None; and a note saying where it came from or why it is missing."""
        where = f".hoststream/{self.venv}"
        if not self.python.exists():
            return None, (
                f"{self.title} skipped: {where} is missing (deploy/local/install-bench.sh makes it)"
            )
        version = subprocess.run(
            [
                str(self.python),
                "-c",
                # Not every package has __version__ (Bytewax has none); its metadata does.
                f"import {self.package}, importlib.metadata as m; "
                f"print(m.version({self.package!r}))",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if version.returncode != 0:
            return None, f"{self.title} skipped: it does not import in {where}"
        return self.python, (
            f"{self.title} {version.stdout.strip()} ran from its own virtualenv ({where}): "
            f"{self.why_own_venv}"
        )


PEERS = (
    Peer("quix_streams", "Quix Streams", "quixstreams", "bench-quix", "quix_window", QUIX_CONFLICT),
    Peer(
        "bytewax",
        "Bytewax",
        "bytewax",
        "bench-bytewax",
        "bytewax_window",
        "kept apart as the other peers are, so its dependencies never move hoststream's pins",
    ),
    Peer(
        "pathway",
        "Pathway",
        "pathway",
        "bench-pathway",
        "pathway_window",
        "kept apart as the other peers are (it brings its own pins, e.g. of numpy and pydantic)",
    ),
)


def run(env: dict[str, str]) -> list[Result]:
    factor = scale()
    target = int(FULL_SAMPLES * factor)
    prefix = f"benchstr{uuid.uuid4().hex[:6]}."
    env = {**env, "HOSTSTREAM_TOPIC_PREFIX": prefix, "HOSTSTREAM_LOG_LEVEL": "WARNING"}
    settings = settings_for(env)
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    try:
        loaded = load_metric_topics(settings, hosts=HOSTS, target_samples=target)
        print(f"streams: loaded {loaded.describe()} in {loaded.seconds:.0f}s", flush=True)
        contenders: dict[str, tuple[list[str], str]] = {}
        hs_group = f"{prefix}hs"
        contenders["hoststream"] = (_hoststream_cmd(hs_group), hs_group)
        # As installed by default, hoststream exports no traces (nor do the peers
        # trace); with the stack's trace endpoint it also runs traced, measured apart.
        envs = {"hoststream": _untraced(env), "hoststream_baseline": _untraced(env)}
        if env.get("HOSTSTREAM_OTLP_ENDPOINT"):
            traced_group = f"{prefix}traced"
            contenders["hoststream_traced"] = (_hoststream_cmd(traced_group), traced_group)
            notes.append(
                "hoststream: as installed by default, without trace or log endpoints (the peers "
                "trace nothing either); hoststream_traced: the same with the stack's OTLP trace "
                "and log endpoints (a span per batch exported, its traceparent header on every "
                "aggregate, log records exported)"
            )
        baseline = os.environ.get("BENCH_STREAMS_BASELINE")
        if baseline:
            contenders["hoststream_baseline"] = (_hoststream_cmd(f"{prefix}base"), f"{prefix}base")
            notes.append(f"hoststream_baseline: the stream processor of {baseline}")
        faust_group = f"{prefix}faust-plain"
        contenders["faust_plain"] = (
            [sys.executable, "-m", "bench.peers.faust_plain", faust_group, *loaded.topics],
            faust_group,
        )
        for peer in PEERS:
            python, note = peer.interpreter()
            notes.append(note)
            if python is not None:
                group = f"{prefix}{peer.name}"
                contenders[peer.name] = (
                    [str(python), "-m", f"bench.peers.{peer.module}", group, *loaded.topics],
                    group,
                )
        ceiling_group = f"{prefix}ceiling"
        contenders["ceiling"] = (
            [sys.executable, "-m", "bench.peers.bare_consumer", ceiling_group, *loaded.topics],
            ceiling_group,
        )
        figures: dict[str, Any] = {"loaded_samples": loaded.total_samples}
        for name, (cmd, group) in contenders.items():
            full_cap = HOSTSTREAM_CAP_S if name.startswith("hoststream") else CAP_S
            # Smaller data needs less time, but start-up (Quix: ~8 s) does not shrink.
            cap_s = max(30.0, full_cap * min(1.0, 2 * factor))
            cwd = Path(baseline) if baseline and name == "hoststream_baseline" else REPO
            run_env = envs.get(name, env)
            figures[name] = _measure(name, cmd, run_env, group, loaded, workdir, cap_s, cwd)
            print(f"streams: {name}: {figures[name]}", flush=True)
        # The aims compare hoststream with Quix Streams and the ceiling, whose
        # rates each move by a fifth or more between runs here: more rounds of
        # the three, one after another, give each a median.
        rounds = int(os.environ.get("BENCH_STREAMS_ROUNDS", "1"))
        deciding = [n for n in ("hoststream", "quix_streams", "ceiling") if n in contenders]
        for round_number in range(1, rounds):
            for name in deciding:
                cmd, group = contenders[name]
                again = f"{group}-round{round_number}"
                cmd = [again if part == group else part for part in cmd]
                full_cap = HOSTSTREAM_CAP_S if name == "hoststream" else CAP_S
                figures[name].setdefault("rounds", [dict(figures[name])]).append(
                    _measure(
                        f"{name}-round{round_number}",
                        cmd,
                        envs.get(name, env),
                        again,
                        loaded,
                        workdir,
                        max(30.0, full_cap * min(1.0, 2 * factor)),
                    )
                )
                print(f"streams: {name}, round {round_number + 1}: {figures[name]['rounds'][-1]}")
        profile_lines, raw = _profile(_untraced(env), f"{prefix}hs-profile", loaded, workdir)
        if os.environ.get("BENCH_STREAMS_MEMORY", "1") != "0":
            series_per_host = loaded.total_samples / loaded.ticks / loaded.hosts
            figures["state_memory"] = _state_memory(_untraced(env), series_per_host, workdir)
            notes.append(
                "state_memory: hoststream's peak resident memory (VmHWM) per active series "
                f"after reading {MEMORY_TICKS} collections of "
                f"{' and of '.join(f'{h:,}' for h in MEMORY_HOSTS)} simulated hosts "
                "(fresh topics; 1m and 5m windows, alert rules on), in all (bytes_per_series) "
                "and at the margin between the two fleets (bytes_per_series_at_margin: what "
                "each further series costs, leaving out the interpreter and libraries)"
            )
        notes += profile_lines
        notes.append(
            f"profile: {raw.relative_to(REPO)} (collapsed stacks, by function) and "
            "streams_profile.svg (flame graph), from a second hoststream run under py-spy "
            "--nonblocking, not the measured one"
        )
    finally:
        delete_topics(settings, topics_with_prefix(settings, prefix))
        delete_subjects(settings, prefix)
        for path in (settings.state_dir / "faust").glob(f"{prefix}*"):
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)

    ceiling = figures["ceiling"]["samples_per_s"]
    names = [n for n in contenders if n != "ceiling"]
    ratios = {f"{n}_vs_ceiling": figures[n]["samples_per_s"] / ceiling for n in names}
    for peer in ("faust_plain", *(p.name for p in PEERS), "hoststream_baseline"):
        # A peer with no steady rate (its first commit came at the end) has no ratio.
        if figures.get(peer, {}).get("samples_per_s"):
            ratios[f"hoststream_vs_{peer}"] = (
                figures["hoststream"]["samples_per_s"] / figures[peer]["samples_per_s"]
            )
    if "rounds" in figures.get("hoststream", {}):
        medians = {
            n: statistics.median(r["samples_per_s"] for r in figures[n]["rounds"])
            for n in ("hoststream", "quix_streams", "ceiling")
            if "rounds" in figures.get(n, {})
        }
        for n, median in medians.items():
            figures[n]["median_samples_per_s"] = median
        if "ceiling" in medians:
            ratios["hoststream_vs_ceiling_median"] = medians["hoststream"] / medians["ceiling"]
        if "quix_streams" in medians:
            ratios["hoststream_vs_quix_streams_median"] = (
                medians["hoststream"] / medians["quix_streams"]
            )
        notes.append(
            f"rounds (BENCH_STREAMS_ROUNDS={len(figures['hoststream']['rounds'])}): hoststream, "
            "Quix Streams and the ceiling each ran that many times over the same topics, in "
            "fresh groups, the later rounds one contender after another after all contenders' "
            "first; *_median ratios are between the medians of their samples/s"
        )
    notes += [
        "samples/s: from a contender's first offset commit to its last (startup excluded; "
        "samples_per_s_including_startup counts from process start); "
        f"a contender still running after {CAP_S:.0f}s ({HOSTSTREAM_CAP_S:.0f}s for "
        "hoststream) is stopped and measured over what it committed (finished: false); "
        "one that committed nothing by then is measured by its own count of processed "
        "samples (measured_by)",
        "hoststream computes count, sum, min, max, mean, last, exact p50-p99, counter rates "
        "and CPU busy ratios per series over 1m and 5m windows, evaluates the default alert "
        "rules, keeps window state in memory with what changed written to its Faust table's "
        "changelog (through librdkafka, acknowledged before each commit), and writes closed "
        "windows to metrics.agg.1m and .5m; the Faust peer keeps "
        "count/sum/min/max per series in a windowed table, one table write (and changelog "
        "message) per sample, and emits nothing; the Quix peer reduces one window per host "
        "(count/sum/min/max of each of its series, updated once per event, RocksDB state with "
        "changelog) and discards the closed windows; Bytewax does the same per host and topic "
        "with fold_window (one worker, in-memory state, no recovery snapshots); Pathway "
        "computes the same four numbers per series with windowby over a row per sample "
        "(a Python UDF decodes each value, the Rust engine reduces; exactly-once behaviour, "
        "results discarded); the ceiling decodes and discards",
        "Bytewax and Pathway keep their own offsets rather than a consumer group's: Bytewax's "
        "librdkafka consumers commit the offsets they handed to the dataflow every second; "
        "Pathway's read far ahead of its engine (with auto commit the group had committed "
        "everything while the engine had processed a few hundred events), so it commits "
        "nothing and is measured by its own count of samples decoded in the engine, which "
        "exceeds the topics' samples when the engine evaluates a row more than once (by a "
        "quarter in one run), so its rate is an upper bound",
        f"scale {factor:g} (BENCH_SCALE); {load_note()}; {code_version()}",
    ]
    result = Result(
        "streams",
        "1-minute tumbling-window aggregation of the same pre-loaded topics, "
        "each contender a fresh consumer group in its own process",
        loaded.describe(),
        figures=figures,
        ratios=ratios,
        notes=notes,
    )
    plot(figures, list(contenders))
    return [result]


def plot(figures: dict[str, Any], contenders: list[str]) -> Path:
    """The suite's bar chart, from its figures (also used to redraw a saved result)."""
    labels = {
        "hoststream": "hoststream stream processor",
        "hoststream_traced": "hoststream, traced (OTLP)",
        "hoststream_baseline": "hoststream, baseline checkout",
        "faust_plain": "plain Faust windowed table",
        "quix_streams": "Quix Streams tumbling window",
        "bytewax": "Bytewax fold_window",
        "pathway": "Pathway windowby",
        "ceiling": "bare consumer, Avro decode only",
    }
    return bar_plot(
        "streams",
        "Samples/s through 1-minute tumbling windows, higher is better",
        [labels[n] for n in contenders],
        [figures[n]["samples_per_s"] for n in contenders],
        "samples per second",
    )

"""What every benchmark shares: the machine's description, results files, plots, process probes."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def hardware() -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


@dataclass
class Result:
    """One benchmark's outcome: what ran, on what, and the measured figures."""

    name: str
    workload: str
    data_size: str
    figures: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def save(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        body = {
            "name": self.name,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "hardware": hardware(),
            "workload": self.workload,
            "data_size": self.data_size,
            "figures": self.figures,
            "ratios": self.ratios,
            "notes": self.notes,
            "code": code_info(),
        }
        path.write_text(json.dumps(body, indent=2) + "\n")
        return path


def bar_plot(name: str, title: str, labels: list[str], values: list[float], unit: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    bars = ax.barh(labels, values, color=["#2b6cb0"] + ["#a0aec0"] * (len(values) - 1))
    ax.bar_label(bars, labels=[f"{v:,.0f}" if v >= 100 else f"{v:.3g}" for v in values], padding=3)
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize=10)
    ax.invert_yaxis()
    ax.margins(x=0.2)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hoststream(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hoststream", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@dataclass
class CpuProbe:
    """CPU seconds (user + system, children excluded) and RSS of one process over a span."""

    pid: int
    cpu0: float = 0.0
    t0: float = 0.0

    def start(self) -> None:
        times = psutil.Process(self.pid).cpu_times()
        self.cpu0 = times.user + times.system
        self.t0 = time.monotonic()

    def stop(self) -> tuple[float, float, float]:
        """(CPU seconds, wall seconds, RSS MiB) since :meth:`start`."""
        proc = psutil.Process(self.pid)
        times = proc.cpu_times()
        return (
            times.user + times.system - self.cpu0,
            time.monotonic() - self.t0,
            proc.memory_info().rss / 2**20,
        )


def scale() -> float:
    """``BENCH_SCALE`` (default 1): multiplies every suite's data size."""
    value = float(os.environ.get("BENCH_SCALE", "1"))
    if not value > 0:
        raise SystemExit(f"BENCH_SCALE must be positive, got {value}")
    return value


def load_note() -> str:
    """The machine's load averages, for results taken on a shared machine."""
    one, five, fifteen = os.getloadavg()
    return f"load average at the end (1/5/15 min): {one:.2f} {five:.2f} {fifteen:.2f}"


def percentile(values: list[float], q: float) -> float:
    """``sorted(values)[floor(q * (n - 1))]``: the nearest-rank percentile, no interpolation."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def settings_for(env: dict[str, str], **overrides: Any) -> Any:
    """hoststream's settings as a process started with ``env`` would load them."""
    from hoststream.config import load_settings

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return load_settings(**overrides)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def panels_plot(
    name: str, title: str, panels: list[tuple[str, list[str], list[float], str]]
) -> Path:
    """One PNG of several bar charts side by side: (subtitle, labels, values, unit) each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.2), squeeze=False)
    for ax, (subtitle, labels, values, unit) in zip(axes[0], panels, strict=True):
        bars = ax.barh(labels, values, color=["#2b6cb0"] + ["#a0aec0"] * (len(values) - 1))
        ax.bar_label(
            bars, labels=[f"{v:,.0f}" if v >= 100 else f"{v:.3g}" for v in values], padding=3
        )
        ax.set_xlabel(unit)
        ax.set_title(subtitle, fontsize=9)
        ax.invert_yaxis()
        ax.margins(x=0.25)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def code_info() -> dict[str, Any]:
    """The commit measured and whether the work tree differed from it (every results file)."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        # --no-optional-locks: reading must not refresh the index.
        [
            "git",
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            # The results being written are not the code measured.
            ":!bench/results",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {"commit": head or None, "work_tree_differs": bool(dirty)}


def code_version() -> str:
    """The commit measured, and whether the work tree differed from it, as one line."""
    info = code_info()
    head = (info["commit"] or "")[:12]
    dirty = " with uncommitted changes in the work tree" if info["work_tree_differs"] else ""
    return f"code: commit {head}{dirty}"


def proc_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """User + system CPU seconds of ``pid`` and of its reaped children, from its own
    ``/proc/<pid>/stat`` (utime, stime, cutime, cstime: fields 14 to 17)."""
    text = (proc / str(pid) / "stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = text[text.rindex(")") + 2 :].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_tree_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """:func:`proc_cpu_seconds` summed over ``pid`` and its live descendants (a
    service's workers, e.g. PostgreSQL's backends); 0 if ``pid`` is gone."""
    parents: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(text[text.rindex(")") + 2 :].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0.0
    for member in tree:
        # One that exited meanwhile: its time is in its parent's cutime once reaped.
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += proc_cpu_seconds(member, proc)
    return total


def stack_for_env(env: dict[str, str]) -> Any:
    """The local stack that ``hoststream stack`` would manage under ``env``: its state
    folder, jars and ``HOSTSTREAM_STACK_PORT_OFFSET``."""
    from hoststream.stack import Stack

    cfg = settings_for(env)
    return Stack(cfg.state_dir, cfg.lib_dir, port_offset=cfg.stack_port_offset)


def delete_fleet_series(vm_url: str, seed: int, max_hosts: int) -> str | None:
    """Delete the VictoriaMetrics series of simulated fleet ``seed``; the error text, if any.

    A request may match at most a million series (VictoriaMetrics'
    -search.maxUniqueTimeseries) and a simulated host has about 4,000 to
    6,000 (its samples' and every statistic of every window size's): a
    hundred hosts a request, by the first three digits of their number.
    Series written a moment ago may sit in buffers, out of delete_series'
    reach, so they are flushed first.
    """
    import httpx

    httpx.get(f"{vm_url}/internal/force_flush", timeout=60)
    for hundred in range(max_hosts // 100 + 1):
        deleted = httpx.post(
            f"{vm_url}/api/v1/admin/tsdb/delete_series",
            params={"match[]": f'{{instance=~"sim-s{seed}-h{hundred:03d}.*"}}'},
            timeout=120,
        )
        if deleted.status_code >= 300:
            return deleted.text
    return None

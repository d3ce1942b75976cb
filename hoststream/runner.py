"""``hoststream run``: the stack plus every pipeline component, on this host.

Each component runs as its own ``hoststream`` child process, as it would on a
fleet, so a crash in one shows up as that component's exit, not as a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from hoststream.api.auth import SCOPES, ensure_dev_secret, issue_jwt
from hoststream.config import Settings
from hoststream.ports import COMPONENT_METRICS_PORTS as PORTS
from hoststream.stack import Stack

__all__ = ["Component", "pipeline_components", "run_pipeline"]


@dataclass
class Component:
    """One pipeline process started by ``hoststream run``.

    Args:
        name: shown in the status line; also the log file's name.
        args: the ``hoststream`` sub-command and its options.
        metrics_port: where the component serves ``/metrics`` on loopback.
        headline: the counter the status line shows for this component.
    """

    name: str
    args: list[str]
    metrics_port: int
    headline: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, env: dict[str, str], logdir: Path) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        with (logdir / f"{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hoststream", *self.args],
                env={**env, "HOSTSTREAM_METRICS_PORT": str(self.metrics_port)},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def state(self) -> str:
        if self.process is None:
            return "not started"
        code = self.process.poll()
        return "running" if code is None else f"exited {code}"

    def headline_value(self) -> float | None:
        """The headline counter summed over its labels, scraped from ``/metrics``."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1.0).text
        except httpx.HTTPError:
            return None
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == self.headline:
                    total += sample.value
        return total

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def pipeline_components(cfg: Settings, simulate_hosts: int) -> list[Component]:
    """The pipeline's processes, in start order."""
    produced = "hoststream_producer_events_total"
    components = [
        Component(
            "producer",
            ["produce", "--interval", str(cfg.collect_interval_s)],
            PORTS["producer"],
            produced,
        )
    ]
    if simulate_hosts:
        components.append(
            Component(
                "simulator",
                ["produce", "--simulate-hosts", str(simulate_hosts)],
                PORTS["simulator"],
                produced,
            )
        )
    components.append(
        Component("stream", ["stream"], PORTS["stream"], "hoststream_stream_windows_emitted_total")
    )
    written = "hoststream_sink_records_written_total"
    components += [
        Component(
            "sink-victoriametrics",
            ["sink", "victoriametrics"],
            PORTS["sink-victoriametrics"],
            written,
        ),
        Component("sink-sql", ["sink", "sql"], PORTS["sink-sql"], written),
        # Alertmanager is part of the local stack, so there is always a receiver.
        Component("sink-alerts", ["sink", "alerts"], PORTS["sink-alerts"], written),
    ]
    # The API serves its own /metrics on its port.
    components.append(Component("api", ["api"], cfg.api_port, "hoststream_api_requests_total"))
    return components


def run_pipeline(
    cfg: Settings,
    stack: Stack,
    duration: float | None,
    simulate_hosts: int,
    console: Console,
) -> None:
    with console.status("starting the local stack") as status:
        stack_env = stack.up(on_service=lambda s: status.update(f"starting {s.name}"))
    secret = ensure_dev_secret(cfg)
    env = {**os.environ, **stack_env, "HOSTSTREAM_API_SECRET": secret.get_secret_value()}
    components = pipeline_components(cfg, simulate_hosts)
    for component in components:
        component.start(env, stack.root / "logs")
    started = time.monotonic()
    console.print(f"stack up; addresses in {stack.env_file}. Ctrl-C stops the pipeline.")
    token = issue_jwt(secret, "development", list(SCOPES), ttl_s=12 * 3600)
    console.print(
        f"API: http://{cfg.api_host}:{cfg.api_port}/docs; development token (12 h):\n{token}",
        highlight=False,
        soft_wrap=True,
    )
    try:
        with console.status("") as status:
            while duration is None or time.monotonic() - started < duration:
                elapsed = time.monotonic() - started
                parts = [_describe(c) for c in components]
                healthy = sum(s.healthy for s in stack.status())
                status.update(
                    f"[{elapsed:6.0f}s] services healthy {healthy}/{len(stack.services())} | "
                    + " | ".join(parts)
                )
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        for component in reversed(components):
            component.stop()


def _describe(component: Component) -> str:
    state = component.state
    if state != "running":
        return f"{component.name}: [red]{state}[/]"
    value = component.headline_value()
    return f"{component.name}: {value:.0f}" if value is not None else f"{component.name}: starting"

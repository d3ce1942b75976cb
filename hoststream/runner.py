"""``hoststream run``: the stack plus every pipeline component, on this host.

Each component runs as its own ``hoststream`` child process, as it would on a
fleet, so a crash in one shows up as that component's exit, not as a hang.
When one exits, the others are stopped and the command fails (exit status 1)
with the component's last error line.
"""

from __future__ import annotations

import os
import re
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
from hoststream.errors import ComponentDiedError
from hoststream.ports import scrape_targets
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
        env: settings of this component alone, over the pipeline's environment.
    """

    name: str
    args: list[str]
    metrics_port: int
    headline: str
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log: Path | None = field(default=None, repr=False)
    #: Where this run's lines begin in the log, which earlier runs appended to.
    log_start: int = field(default=0, repr=False)

    def start(self, env: dict[str, str], logdir: Path) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        self.log = logdir / f"{self.name}.log"
        with self.log.open("ab") as log:
            self.log_start = log.tell()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hoststream", *self.args],
                env={**env, **self.env},
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

    @property
    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def last_error_line(self) -> str:
        """The last line of this run's log that reports an error (else its last line)."""
        if self.log is None:
            return ""
        try:
            with self.log.open("rb") as log:
                log.seek(self.log_start)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        errors = [line for line in lines if _ERROR_LINE.search(line)]
        return (errors or lines or [""])[-1]

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


#: What marks a line as the report of a failure: the command line's own
#: ``error:`` line, a logged ERROR, or the last line of a traceback.
_ERROR_LINE = re.compile(r"\berror\b|^[\w.]+(Error|Exception)\b", re.IGNORECASE)


def pipeline_components(cfg: Settings, simulate_hosts: int) -> list[Component]:
    """The pipeline's processes, in start order, on the ports of :mod:`hoststream.ports`."""
    ports = scrape_targets(cfg.stack_port_offset)

    def component(name: str, args: list[str], headline: str) -> Component:
        return Component(
            name, args, ports[name], headline, {"HOSTSTREAM_METRICS_PORT": str(ports[name])}
        )

    produced = "hoststream_producer_events_total"
    interval = ["--interval", str(cfg.collect_interval_s)]
    components = [component("producer", ["produce", *interval, "--simulate-hosts", "0"], produced)]
    if simulate_hosts:
        components.append(
            component("simulator", ["produce", "--simulate-hosts", str(simulate_hosts)], produced)
        )
    components.append(component("stream", ["stream"], "hoststream_stream_windows_emitted_total"))
    written = "hoststream_sink_records_written_total"
    components += [
        component("sink-victoriametrics", ["sink", "victoriametrics"], written),
        component("sink-sql", ["sink", "sql"], written),
        # Alertmanager is part of the local stack, so there is always a receiver.
        component("sink-alerts", ["sink", "alerts"], written),
    ]
    # The API serves its own /metrics on its port.
    components.append(
        Component(
            "api",
            ["api"],
            cfg.api_port,
            "hoststream_api_requests_total",
            {"HOSTSTREAM_API_PORT": str(cfg.api_port)},
        )
    )
    return components


def run_pipeline(
    cfg: Settings,
    stack: Stack,
    duration: float | None,
    simulate_hosts: int,
    console: Console,
) -> None:
    """Start the stack and the pipeline; stop the pipeline after ``duration`` or on Ctrl-C.

    Raises:
        ComponentDiedError: a component exited while the pipeline ran; the
            others are stopped first, and the message carries its last error line.
    """
    with console.status("starting the local stack") as status:
        stack_env = stack.up(on_service=lambda s: status.update(f"starting {s.name}"))
    secret = ensure_dev_secret(cfg)
    env = {**os.environ, **stack_env, "HOSTSTREAM_API_SECRET": secret.get_secret_value()}
    components = pipeline_components(cfg, simulate_hosts)
    for component in components:
        component.start(env, stack.root / "logs")
    started = time.monotonic()
    console.print(f"stack up; addresses in {stack.env_file}. Ctrl-C stops the pipeline.")
    console.print(
        "/metrics: "
        + ", ".join(f"{c.name} :{c.metrics_port}" for c in components)
        + f"; logs in {stack.root / 'logs'}",
        highlight=False,
        soft_wrap=True,
    )
    token = issue_jwt(secret, "development", list(SCOPES), ttl_s=12 * 3600)
    console.print(
        f"API: http://{cfg.api_host}:{cfg.api_port}/docs; development token (12 h):\n{token}",
        highlight=False,
        soft_wrap=True,
    )
    died: Component | None = None
    try:
        with console.status("") as status:
            while duration is None or time.monotonic() - started < duration:
                died = next((c for c in components if c.exited), None)
                if died is not None:
                    break
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
    if died is not None:
        raise ComponentDiedError(died.name, died.state, died.last_error_line(), died.log)


def _describe(component: Component) -> str:
    state = component.state
    if state != "running":
        return f"{component.name}: [red]{state}[/]"
    value = component.headline_value()
    return f"{component.name}: {value:.0f}" if value is not None else f"{component.name}: starting"

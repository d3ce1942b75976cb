"""``hoststream run``: the stack plus every pipeline component, on this host.

Each component runs as its own ``hoststream`` child process, as it would on a
fleet, so a crash in one shows up as that component's exit, not as a hang.
When one exits, the others are stopped and the command fails (exit status 1)
with the component's last error line.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from hoststream.api.auth import SCOPES, ensure_dev_secret, issue_jwt
from hoststream.config import Settings
from hoststream.errors import ComponentDiedError, HoststreamError
from hoststream.ports import scrape_targets
from hoststream.run_report import (
    STATUS_WIDTH,
    Health,
    RunTotals,
    Scrape,
    ServiceHealth,
    StatusLine,
    Summary,
    fleet_query_link,
    fleet_vmui_link,
)
from hoststream.stack import Stack
from hoststream.stack.base import LocalService
from hoststream.stack.manager import PIPELINE_NEEDS, service_group

#: Seconds between looks for a store whose background build has finished.
JOIN_EVERY_S = 5.0

#: The components on the way of a sample into VictoriaMetrics. They start
#: first and the others once these answer: seven Python processes importing
#: their libraries at once share two cores, and the first sample would wait
#: for all of them.
FIRST_SAMPLE_PATH = ("producer", "simulator", "sink-victoriametrics")
#: Seconds the others wait at most for the first ones to answer.
REST_START_AFTER_S = 20.0

__all__ = ["Component", "pipeline_components", "run_pipeline", "stop_components"]


@dataclass
class Component:
    """One pipeline process started by ``hoststream run``.

    Args:
        name: shown in the status line; also the log file's name.
        args: the ``hoststream`` sub-command and its options.
        metrics_port: where the component serves ``/metrics`` on loopback.
        env: settings of this component alone, over the pipeline's environment.
    """

    name: str
    args: list[str]
    metrics_port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log: Path | None = field(default=None, repr=False)
    #: Where this run's lines begin in the log, which earlier runs appended to.
    log_start: int = field(default=0, repr=False)
    #: The component's most recent ``/metrics``; kept after it stops.
    last_scrape: Scrape | None = field(default=None, repr=False)

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

    def scrape(self) -> Scrape | None:
        """Read ``/metrics`` now; the new reading, or None if it did not answer."""
        try:
            response = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1.0)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        self.last_scrape = Scrape.parse(response.text, time.monotonic())
        return self.last_scrape

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM); :meth:`stop` waits for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


#: What marks a line as the report of a failure: the command line's own
#: ``error:`` line, a logged ERROR, or the last line of a traceback.
_ERROR_LINE = re.compile(r"\berror\b|^[\w.]+(Error|Exception)\b", re.IGNORECASE)


def stop_components(components: list[Component]) -> None:
    """Stop the producers first, then the rest together, reading each once before it stops.

    Nothing new enters the pipeline while the rest stops. The last reading
    is what the summary counts (after Ctrl-C, which reached the components
    too, the previous second's reading stands).
    """
    producers = [c for c in components if c.args[0] == "produce"]
    rest = [c for c in components if c not in producers]
    for group in (producers, rest):
        for component in group:
            component.scrape()
            component.terminate()
        for component in group:
            component.stop()


def pipeline_components(cfg: Settings, simulate_hosts: int) -> list[Component]:
    """The pipeline's processes, in start order, on the ports of :mod:`hoststream.ports`."""
    ports = scrape_targets(cfg.stack_port_offset)

    def component(name: str, args: list[str]) -> Component:
        return Component(name, args, ports[name], {"HOSTSTREAM_METRICS_PORT": str(ports[name])})

    interval = ["--interval", str(cfg.collect_interval_s)]
    components = [component("producer", ["produce", *interval, "--simulate-hosts", "0"])]
    if simulate_hosts:
        components.append(
            component("simulator", ["produce", "--simulate-hosts", str(simulate_hosts)])
        )
    components.append(component("stream", ["stream"]))
    components += [
        component("sink-victoriametrics", ["sink", "victoriametrics"]),
        component("sink-sql", ["sink", "sql"]),
        # Alertmanager is part of the local stack, so there is always a receiver.
        component("sink-alerts", ["sink", "alerts"]),
    ]
    # The API serves its own /metrics on its port.
    components.append(
        Component("api", ["api"], cfg.api_port, {"HOSTSTREAM_API_PORT": str(cfg.api_port)})
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
    began = time.monotonic()
    stack_env = _stack_up(stack, console)
    secret = ensure_dev_secret(cfg)
    env = {**os.environ, **stack_env, "HOSTSTREAM_API_SECRET": secret.get_secret_value()}
    components = pipeline_components(cfg, simulate_hosts)
    for component in components:
        # A secure stack gives each component its own principal (the simulator is a producer).
        principal = "producer" if component.name == "simulator" else component.name
        component.env.update(stack.component_environment(principal))
    first = [c for c in components if c.name in FIRST_SAMPLE_PATH]
    rest = [c for c in components if c not in first]
    for component in first:
        component.start(env, stack.root / "logs")
    started, started_wall = time.monotonic(), time.time()
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
        f"API: {_api_scheme(stack)}://{cfg.api_host}:{cfg.api_port}/docs; "
        f"development token (12 h):\n{token}",
        highlight=False,
        soft_wrap=True,
    )
    # Two columns go to the spinner in front of the line.
    line = StatusLine(width=STATUS_WIDTH - 2)
    died: Component | None = None
    last_join = started
    first_sample = _FirstSample(stack_env.get("HOSTSTREAM_VM_URL"), started_wall)
    join_errors: set[str] = set()
    try:
        with console.status("") as status:
            while duration is None or time.monotonic() - started < duration:
                died = next((c for c in components if c.exited), None)
                if died is not None:
                    break
                if rest and (
                    all(c.last_scrape is not None for c in first)
                    or time.monotonic() - started > REST_START_AFTER_S
                ):
                    for component in rest:
                        component.start(env, stack.root / "logs")
                    rest = []
                if time.monotonic() - last_join > JOIN_EVERY_S:
                    last_join = time.monotonic()
                    _join_built(stack, console, join_errors)
                if first_sample.arrived():
                    console.print(
                        f"first samples stored in VictoriaMetrics "
                        f"{time.monotonic() - began:.0f}s after `hoststream run` began",
                        highlight=False,
                    )
                _, markup = line.render(
                    time.monotonic() - started,
                    [scrape for c in components if (scrape := c.scrape()) is not None],
                    _service_health(stack),
                    [_component_health(c) for c in components],
                )
                status.update(markup)
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        ran_s = time.monotonic() - started
        stop_components(components)
    summary = Summary(
        duration_s=ran_s,
        totals=RunTotals.from_scrapes(c.last_scrape for c in components if c.last_scrape),
        samples_stored=_samples_stored(stack_env.get("HOSTSTREAM_VM_URL"), started_wall),
        links=_links(cfg, stack, stack_env, ran_s),
    )
    for text in summary.lines():
        console.print(text, highlight=False, soft_wrap=True)
    if died is not None:
        raise ComponentDiedError(died.name, died.state, died.last_error_line(), died.log)


def _stack_up(stack: Stack, console: Console) -> dict[str, str]:
    """Start the stack, waiting only for what the first sample needs; say what took how long."""
    began = time.monotonic()
    starting: dict[str, None] = {}
    took: list[str] = []
    # The callbacks come from the stack's start threads, one per service.
    lock = threading.Lock()

    def on_service(service: LocalService) -> None:
        with lock:
            starting[service.name] = None
            status.update("starting " + ", ".join(starting))

    def on_ready(service: LocalService, seconds: float) -> None:
        with lock:
            starting.pop(service.name, None)
            if service_group(service) in PIPELINE_NEEDS:
                took.append(f"{service.name} {seconds:.0f}s")
            status.update("starting " + ", ".join(starting))

    with console.status("starting the local stack") as status:
        # Stores still being built from source join later (see the loop in
        # run_pipeline), and the services the pipeline does not need to
        # start answer while it starts.
        stack_env = stack.up(
            on_service=on_service,
            on_ready=on_ready,
            wait_for_builds=False,
            wait_for=PIPELINE_NEEDS,
            restart_outdated=True,
        )
    later = [
        s.name + (" (building)" if s.build is not None and not s.build.built() else "")
        for s in stack.services()
        if service_group(s) not in PIPELINE_NEEDS
    ]
    console.print(
        f"stack answering in {time.monotonic() - began:.0f}s ({', '.join(took)})"
        + (f"; joining while the pipeline runs: {', '.join(later)}" if later else ""),
        highlight=False,
        soft_wrap=True,
    )
    return stack_env


def _join_built(stack: Stack, console: Console, reported: set[str]) -> None:
    """Start the stores whose build has finished; one that cannot start does not stop the run.

    Args:
        reported: errors already printed, so a store that keeps failing is told once.
    """
    try:
        joined = stack.join_built()
    except HoststreamError as error:
        if str(error) not in reported:
            reported.add(str(error))
            console.print(
                f"a store built in the background did not start: {error}",
                style="yellow",
                highlight=False,
            )
        return
    if joined:
        console.print(f"joined: {', '.join(joined)}", highlight=False)


@dataclass
class _FirstSample:
    """Asks VictoriaMetrics, every few seconds, whether the run's first raw samples arrived."""

    vm_url: str | None
    since_wall: float
    every_s: float = 2.0
    found: bool = False
    _asked_at: float = 0.0

    def arrived(self) -> bool:
        """True once: at the first look that finds a sample stamped since the run started."""
        if self.found or self.vm_url is None or time.monotonic() - self._asked_at < self.every_s:
            return False
        self._asked_at = time.monotonic()
        window = f"{math.ceil(time.time() - self.since_wall) + 1}s"
        query = f'count(count_over_time({{job="hoststream",__name__!~".*:.*"}}[{window}]))'
        try:
            response = httpx.get(
                f"{self.vm_url}/api/v1/query", params={"query": query}, timeout=2.0
            )
            self.found = bool(response.json()["data"]["result"])
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return self.found


def _service_health(stack: Stack) -> list[ServiceHealth]:
    found = []
    for status in stack.status():
        if status.healthy:
            health = Health.UP
        elif status.detail == "building":
            health = Health.BUILDING
        elif status.pid is not None:
            health = Health.STARTING
        else:
            health = Health.DOWN
        found.append(ServiceHealth(status.name, health, status.detail))
    return found


def _component_health(component: Component) -> ServiceHealth:
    state = component.state
    if state == "not started":
        # Waits for the components on the first sample's way (FIRST_SAMPLE_PATH).
        return ServiceHealth(component.name, Health.STARTING)
    if state != "running":
        return ServiceHealth(component.name, Health.DOWN, state)
    # Scraped just before: a running component that never answered is starting.
    answered = component.last_scrape is not None
    return ServiceHealth(component.name, Health.UP if answered else Health.STARTING)


def _samples_stored(vm_url: str | None, since: float) -> float | None:
    """Raw samples VictoriaMetrics holds stamped since ``since`` (Unix s; aggregates excluded)."""
    if vm_url is None:
        return None
    # Every sample of the run is stamped after the components started.
    window = f"{math.ceil(time.time() - since)}s"
    query = f'sum(count_over_time({{job="hoststream",__name__!~".*:.*"}}[{window}]))'
    try:
        # Samples of the sinks' last batches become searchable on a flush.
        httpx.get(f"{vm_url}/internal/force_flush", timeout=5.0)
        body = httpx.get(f"{vm_url}/api/v1/query", params={"query": query}, timeout=10.0).json()
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0
    except (httpx.HTTPError, ValueError, KeyError, IndexError):
        return None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3.0).status_code == 200
    except httpx.HTTPError:
        return False


def _links(
    cfg: Settings, stack: Stack, stack_env: dict[str, str], ran_s: float
) -> list[tuple[str, str]]:
    links = [("API docs", f"{_api_scheme(stack)}://{cfg.api_host}:{cfg.api_port}/docs")]
    vm_url = stack_env.get("HOSTSTREAM_VM_URL")
    if vm_url:
        if _answers(f"{vm_url}/vmui/"):
            links.append(("metrics (vmui)", fleet_vmui_link(vm_url, ran_s)))
        else:
            # Debian's package is built without the UI (its JavaScript is not
            # built from source there); the query API answers the same question.
            links.append(("metrics (query)", fleet_query_link(vm_url)))
    for status in stack.status():
        if status.name == "jaeger" and status.healthy:
            links.append(("traces (Jaeger)", f"{status.address}/search?service=hoststream-stream"))
        elif status.name == "victorialogs" and status.healthy:
            links.append(("logs (VictoriaLogs)", f"{status.address}/select/vmui/"))
    return links


def _api_scheme(stack: Stack) -> str:
    """The secure stack gives the API a certificate: it serves HTTPS."""
    return "https" if stack.security is not None else "http"

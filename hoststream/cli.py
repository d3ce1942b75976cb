"""The ``hoststream`` command line (CONTRACT.md).

Exit status: 0 on success, 2 on bad usage or configuration (one line naming the
setting), 1 on a runtime failure.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

from hoststream.config import Settings, load_settings
from hoststream.errors import ConfigurationError, HoststreamError, StackError
from hoststream.runtime import run_component
from hoststream.stack import Stack
from hoststream.telemetry import configure_logging, serve_metrics
from hoststream.tracing import configure_tracing, shutdown_tracing, tracing_enabled

if TYPE_CHECKING:
    from hoststream.producers.agent import EventSource
    from hoststream.sinks import SinkKind

__all__ = ["app", "main"]

app = typer.Typer(
    help="Host metrics streamed through Kafka.", no_args_is_help=True, add_completion=False
)
stack_app = typer.Typer(
    help="The local real services: Kafka, schema registry, VictoriaMetrics, PostgreSQL."
)
app.add_typer(stack_app, name="stack")

console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML file of settings; HOSTSTREAM_* variables win.")
]


class _State:
    config_file: Path | None = None


@app.callback()
def _root(config: ConfigOption = None) -> None:
    _State.config_file = config


def settings(**overrides: object) -> Settings:
    return load_settings(_State.config_file, **overrides)


def stack_for(cfg: Settings, brokers: int = 1) -> Stack:
    return Stack(cfg.state_dir, cfg.lib_dir, brokers=brokers, port_offset=cfg.stack_port_offset)


@stack_app.command("up")
def stack_up(
    brokers: Annotated[int, typer.Option(help="Kafka brokers: 1, or 3 for a KRaft cluster.")] = 1,
) -> None:
    """Start the local services (idempotent) and write .hoststream/stack.env."""
    if brokers not in (1, 3):
        raise ConfigurationError("--brokers", "must be 1 or 3")
    cfg = settings()
    stack = stack_for(cfg, brokers)
    with console.status("starting the stack") as status:
        stack.up(on_service=lambda s: status.update(f"starting {s.name} ({s.address})"))
    _print_status(stack)
    console.print(f"addresses written to {stack.env_file}; `source` it in a shell")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services this stack started, by pid."""
    stopped = stack_for(settings()).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Show each service, its address, pid and health; exit 1 if one is down."""
    stack = stack_for(settings())
    if not _print_status(stack):
        raise typer.Exit(1)


def _print_status(stack: Stack) -> bool:
    table = Table("service", "address", "pid", "health")
    all_ok = True
    for st in stack.status():
        all_ok &= st.healthy
        health = "[green]up[/]" if st.healthy else "[red]down[/]"
        table.add_row(st.name, st.address, str(st.pid or "-"), health)
    Console().print(table)
    return all_ok


@app.command("produce")
def produce(
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between collections (HOSTSTREAM_COLLECT_INTERVAL_S)."),
    ] = None,
    simulate_hosts: Annotated[
        int, typer.Option(help="Produce for N simulated hosts instead of this one.")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated fleet.")] = 1,
    speedup: Annotated[
        float, typer.Option(help="Simulated time runs this many times faster (simulation only).")
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until signalled).")
    ] = None,
) -> None:
    """Collect this host's metrics (or simulate a fleet) and publish them to Kafka."""
    import threading

    from hoststream.producers.agent import (
        HostEvents,
        collectors_for,
        create_metric_topics,
        install_stop_signals,
        run_producer,
    )
    from hoststream.producers.publisher import EventPublisher, PublisherMetrics
    from hoststream.schemas import MetricEvent, codec_for

    if simulate_hosts < 0:
        raise ConfigurationError("--simulate-hosts", "must be 0 or more")
    if speedup <= 0 or (speedup != 1.0 and not simulate_hosts):
        raise ConfigurationError("--speedup", "must be positive, and is for simulation only")
    cfg = settings(collect_interval_s=interval)
    configure_logging("producer", cfg.log_level, cfg.log_format)
    tracer = configure_tracing(cfg, "producer")
    source: EventSource
    if simulate_hosts:
        from hoststream.producers.simulation import SimulatedFleet

        source = SimulatedFleet(simulate_hosts, seed=seed)
    else:
        source = HostEvents(collectors_for(cfg), cfg.host_id, cfg.host_labels)
    create_metric_topics(cfg, source.families)
    publisher = EventPublisher(cfg, codec_for(cfg, MetricEvent).serializer, PublisherMetrics())
    serve_metrics(cfg.metrics_port)
    stop = threading.Event()
    install_stop_signals(stop)
    try:
        report = run_producer(
            cfg,
            source,
            publisher,
            stop,
            interval_s=cfg.collect_interval_s,
            speedup=speedup,
            duration_s=duration,
            pace=bool(simulate_hosts),
            tracer=tracer if tracing_enabled() else None,
        )
    finally:
        shutdown_tracing()
    console.print(
        f"produced {report.events} events ({report.samples} samples) in "
        f"{report.elapsed_seconds:.1f}s: {report.events_per_second:.0f} events/s, "
        f"{report.samples_per_second:.0f} samples/s; dropped {report.dropped}, "
        f"invalid samples not sent {report.invalid_samples}, "
        f"unacknowledged at exit {report.unflushed}, ticks {report.ticks} "
        f"(skipped {report.skipped_ticks}), CPU {report.cpu_ms_per_tick:.1f} ms per tick",
        highlight=False,
    )
    if report.unflushed:
        raise typer.Exit(1)


@app.command("stream")
def stream(
    windows: Annotated[str, typer.Option(help="Window sizes, e.g. 10s,1m,5m.")] = "1m,5m",
    grace: Annotated[
        float, typer.Option(help="Seconds a late sample still counts.", min=0, max=3600)
    ] = 10.0,
    rules: Annotated[
        Path | None, typer.Option(help="Alert rules YAML (default: the built-in host rules).")
    ] = None,
    no_alerts: Annotated[bool, typer.Option("--no-alerts", help="Aggregates only.")] = False,
) -> None:
    """Run the Faust stream processor: windowed aggregates and alert rules."""
    from hoststream.streams.app import run_worker

    cfg = settings()
    configure_logging("stream", cfg.log_level, cfg.log_format)
    configure_tracing(cfg, "stream")
    try:
        run_worker(
            cfg,
            windows=[w.strip() for w in windows.split(",") if w.strip()],
            grace_s=grace,
            rules_file=rules,
            alerting=not no_alerts,
            metrics_port=cfg.metrics_port,
        )
    finally:
        # Faust's worker ends by raising SystemExit: this still exports the last spans.
        shutdown_tracing()


class SinkName(StrEnum):
    victoriametrics = "victoriametrics"
    sql = "sql"
    alerts = "alerts"


@app.command("sink")
def sink(
    kind: Annotated[SinkName, typer.Argument(help="Which sink consumer group to run.")],
    routes: Annotated[
        Path | None,
        typer.Option(help="Alert routing YAML (alerts only; HOSTSTREAM_ALERT_ROUTES_FILE)."),
    ] = None,
) -> None:
    """Run one sink: raw samples and aggregates to VictoriaMetrics, aggregates and alerts
    to SQL, or alerts to PagerDuty, Opsgenie and Alertmanager."""
    cfg = settings(alert_routes_file=routes)
    if kind is SinkName.alerts:
        from hoststream.sinks.alerts import run_alert_sink

        run_component("sink-alerts", cfg, run_alert_sink)
        return
    from hoststream.sinks import run_sink

    sink_kind: SinkKind = "victoriametrics" if kind is SinkName.victoriametrics else "sql"
    run_component(f"sink-{kind.value}", cfg, partial(run_sink, kind=sink_kind))


@app.command("api")
def api(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (HOSTSTREAM_API_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (HOSTSTREAM_API_PORT).")] = None,
) -> None:
    """Serve the aggregate query API."""
    from hoststream.api.server import run_api

    cfg = settings(api_host=host, api_port=port)
    configure_logging("api", cfg.log_level, cfg.log_format)
    # Before the app is built: create_app instruments it only when tracing is on.
    configure_tracing(cfg, "api")
    try:
        run_api(cfg)
    finally:
        shutdown_tracing()


@app.command("token")
def token(
    scopes: Annotated[
        str, typer.Option(help="Comma-separated scopes: read:metrics, read:alerts.")
    ] = "read:metrics,read:alerts",
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1, max=366 * 86400)] = 3600,
    subject: Annotated[str, typer.Option(help="Who the token is for (the JWT's sub).")] = "cli",
    api_key: Annotated[
        bool, typer.Option("--api-key", help="Make a new API key instead of a JWT.")
    ] = False,
) -> None:
    """Print a bearer token for the API, signed with the configured secret."""
    import yaml

    from hoststream.api.auth import issue_jwt, new_api_key, resolve_secret

    cfg = settings()
    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    if api_key:
        key, entry = new_api_key(wanted)
        console.print("add this entry to the file named by HOSTSTREAM_API_KEYS_FILE:")
        console.print(yaml.safe_dump([entry], sort_keys=False), highlight=False)
        print(key)
        return
    secret = resolve_secret(cfg)
    if secret is None:
        raise ConfigurationError(
            "HOSTSTREAM_API_SECRET", "not set, and no .hoststream/api-secret to fall back on"
        )
    print(issue_jwt(secret, subject, wanted, ttl))


@app.command("run")
def run(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    simulate_hosts: Annotated[
        int, typer.Option(help="Simulated hosts to produce for, besides this host.")
    ] = 0,
) -> None:
    """Run the whole pipeline on this host, with a live status line."""
    from hoststream.runner import run_pipeline

    cfg = settings()
    configure_logging("run", cfg.log_level, cfg.log_format)
    run_pipeline(
        cfg, stack_for(cfg), duration=duration, simulate_hosts=simulate_hosts, console=console
    )


def main() -> None:
    """Entry point: maps hoststream's errors to the exit statuses of the contract."""
    try:
        app(standalone_mode=False)
    except ConfigurationError as exc:
        console.print(f"[red]configuration error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except StackError as exc:
        console.print(f"[red]stack error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except HoststreamError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except TyperException as exc:  # usage errors arrive here outside standalone mode
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        sys.exit(getattr(exc, "exit_code", 2))

"""The ``hoststream`` command line (docs/contract.md).

Exit status: 0 on success, 2 on bad usage or configuration (one line naming the
setting), 1 on a runtime failure.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.exceptions import TyperException

from hoststream.config import Settings, load_settings
from hoststream.errors import ConfigurationError, HoststreamError, StackError

if TYPE_CHECKING:
    from rich.console import Console

    from hoststream.sinks import SinkKind
    from hoststream.stack import Stack

__all__ = ["app", "main"]

# A traceback's local variables may hold a client configuration with a password in it.
app = typer.Typer(
    help="Host metrics streamed through Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
stack_app = typer.Typer(
    help="The local real services: Kafka, schema registry, VictoriaMetrics, PostgreSQL.",
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack_app, name="stack")


@cache
def console() -> Console:
    """Where the commands speak to the operator (stderr).

    Each command imports its component only when it runs, and rich only when it
    prints: the agent's memory is that of what it uses (docs/metrics.md).
    """
    from rich.console import Console

    return Console(stderr=True)


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


def stack_for(
    cfg: Settings,
    brokers: int = 1,
    secure: bool | None = None,
    mutual_tls: bool = False,
    regions: int | None = None,
) -> Stack:
    """The stack of the settings' state folder; ``secure``, ``regions`` None: as it was started."""
    from hoststream.stack import Stack

    return Stack(
        cfg.state_dir,
        cfg.lib_dir,
        brokers=brokers,
        port_offset=cfg.stack_port_offset,
        secure=secure,
        mutual_tls=mutual_tls,
        regions=regions,
    )


@stack_app.command("up")
def stack_up(
    brokers: Annotated[int, typer.Option(help="Kafka brokers: 1, or 3 for a KRaft cluster.")] = 1,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="TLS and authentication everywhere: a local CA, Kafka on SASL_SSL with "
            "SCRAM users and ACLs per component, PostgreSQL over TLS with a role per "
            "component, HTTPS for VictoriaMetrics, the registry and the API.",
        ),
    ] = False,
    mtls: Annotated[
        bool,
        typer.Option("--mtls", help="With --secure: Kafka clients also present a certificate."),
    ] = False,
    regions: Annotated[
        int,
        typer.Option(
            help="1, or 2: a second region (its own Kafka, registry, VictoriaMetrics and "
            "PostgreSQL, ports moved by 2000, addresses in .hoststream/region-b/stack.env) "
            "and MirrorMaker 2 copying aggregates, alerts and schemas both ways."
        ),
    ] = 1,
) -> None:
    """Start the local services (idempotent) and write .hoststream/stack.env."""
    if brokers not in (1, 3):
        raise ConfigurationError("--brokers", "must be 1 or 3")
    if mtls and not secure:
        raise ConfigurationError("--mtls", "needs --secure")
    if regions not in (1, 2):
        raise ConfigurationError("--regions", "must be 1 or 2")
    if regions == 2 and (secure or brokers != 1):
        raise ConfigurationError("--regions", "2 runs one plaintext broker per region")
    cfg = settings()
    stack = stack_for(cfg, brokers, secure=secure, mutual_tls=mtls, regions=regions)
    with console().status("starting the stack") as status:
        stack.up(on_service=lambda s: status.update(f"starting {s.name} ({s.address})"))
    _print_status(stack)
    console().print(f"addresses written to {stack.env_file}; `source` it in a shell")
    if stack.regions == 2:
        console().print(f"the second region's: {stack.other_region().env_file}", highlight=False)
    if stack.security is not None:
        console().print(
            f"each component's user and secret files: {stack.security.dir}/<component>.env "
            "(source it after stack.env)",
            highlight=False,
            soft_wrap=True,
        )


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services this stack started, by pid."""
    stopped = stack_for(settings()).down()
    console().print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Show each service, its address, pid and health; exit 1 if one is down."""
    stack = stack_for(settings())
    if not _print_status(stack):
        raise typer.Exit(1)


def _print_status(stack: Stack) -> bool:
    from rich.console import Console
    from rich.table import Table

    table = Table("service", "address", "pid", "health", "detail")
    all_ok = True
    for st in stack.status():
        all_ok &= st.healthy
        health = "[green]up[/]" if st.healthy else "[red]down[/]"
        table.add_row(st.name, st.address, str(st.pid or "-"), health, st.detail)
    Console().print(table)
    return all_ok


@app.command("produce")
def produce(
    *,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between collections (HOSTSTREAM_COLLECT_INTERVAL_S; 10)."),
    ] = None,
    simulate_hosts: Annotated[
        int | None,
        typer.Option(
            help="Produce for N simulated hosts instead of this one (HOSTSTREAM_SIMULATE_HOSTS)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the simulated fleet (HOSTSTREAM_SIMULATE_SEED).")
    ] = None,
    speedup: Annotated[
        float | None,
        typer.Option(
            help="Simulated time runs this many times faster (HOSTSTREAM_SIMULATE_SPEEDUP)."
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            help="Share the simulated hosts among N processes (HOSTSTREAM_SIMULATE_PROCESSES)."
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until signalled).")
    ] = None,
) -> None:
    """Collect this host's metrics (or simulate a fleet) and publish them to Kafka."""
    from hoststream.producers.app import run_agent
    from hoststream.runtime import run_component

    cfg = settings(
        collect_interval_s=interval,
        simulate_hosts=simulate_hosts,
        simulate_seed=seed,
        simulate_speedup=speedup,
        simulate_processes=processes,
    )
    if not cfg.simulate_hosts and not cfg.simulate_processes > 1:
        from hoststream.producers.handover import hand_over

        # This host's agent runs in a fresh process image without pydantic,
        # typer and the rest of the command line: see producers/handover.py.
        hand_over(cfg, duration)
    report = run_component("producer", cfg, partial(run_agent, duration_s=duration))
    console().print(report.summary(), highlight=False)
    if report.lost:
        raise typer.Exit(1)


@app.command("stream")
def stream(
    *,
    app_id: Annotated[
        str | None,
        typer.Option(help="Faust app id and consumer group (HOSTSTREAM_STREAM_APP_ID)."),
    ] = None,
    windows: Annotated[
        str | None,
        typer.Option(help="Window sizes, e.g. 10s,1m,5m (HOSTSTREAM_STREAM_WINDOWS; 1m,5m)."),
    ] = None,
    grace: Annotated[
        float | None,
        typer.Option(help="Seconds a late sample still counts (HOSTSTREAM_STREAM_GRACE_S; 10)."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="At most this many messages a batch (HOSTSTREAM_STREAM_BATCH_SIZE)."),
    ] = None,
    batch_within: Annotated[
        float | None,
        typer.Option(
            help="Seconds before a batch is processed anyway (HOSTSTREAM_STREAM_BATCH_WITHIN_S)."
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(help="Alert rules YAML (HOSTSTREAM_STREAM_RULES_FILE; built-in rules)."),
    ] = None,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Aggregates only (HOSTSTREAM_STREAM_ALERTS=false).")
    ] = False,
    max_future: Annotated[
        float | None,
        typer.Option(
            help="Seconds an event may be ahead of the clock "
            "(HOSTSTREAM_STREAM_MAX_FUTURE_S; default HOSTSTREAM_VALIDATION_MAX_FUTURE_S, 600)."
        ),
    ] = None,
    session_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds before a silent worker's partitions move "
            "(HOSTSTREAM_STREAM_SESSION_TIMEOUT_S)."
        ),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics on this port (HOSTSTREAM_METRICS_PORT).")
    ] = None,
) -> None:
    """Run the Faust stream processor: windowed aggregates and alert rules."""
    from hoststream.runtime import run_component
    from hoststream.streams.app import run_worker

    cfg = settings(
        stream_app_id=app_id,
        stream_windows=windows,
        stream_grace_s=grace,
        stream_batch_size=batch_size,
        stream_batch_within_s=batch_within,
        stream_rules_file=rules,
        stream_alerts=False if no_alerts else None,
        stream_max_future_s=max_future,
        stream_session_timeout_s=session_timeout,
        metrics_port=metrics_port,
    )
    run_component("stream", cfg, run_worker)


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
    from hoststream.runtime import run_component

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
    from hoststream.runtime import run_component

    cfg = settings(api_host=host, api_port=port)
    # The API's /metrics is on its own port.
    run_component("api", cfg, run_api, serve_metrics=False)


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
        console().print("add this entry to the file named by HOSTSTREAM_API_KEYS_FILE:")
        console().print(yaml.safe_dump([entry], sort_keys=False), highlight=False)
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
    from hoststream.telemetry import configure_logging

    cfg = settings()
    configure_logging("run", cfg.log_level, cfg.log_format)
    run_pipeline(
        cfg, stack_for(cfg), duration=duration, simulate_hosts=simulate_hosts, console=console()
    )


def main() -> None:
    """Entry point: maps hoststream's errors to the exit statuses of the contract."""
    try:
        app(standalone_mode=False)
    except ConfigurationError as exc:
        console().print(f"[red]configuration error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except StackError as exc:
        console().print(f"[red]stack error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except HoststreamError as exc:
        console().print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
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

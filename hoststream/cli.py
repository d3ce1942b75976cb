"""The ``hoststream`` command line (CONTRACT.md).

Exit status: 0 on success, 2 on bad usage or configuration (one line naming the
setting), 1 on a runtime failure.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

from hoststream.config import Settings, load_settings
from hoststream.errors import ConfigurationError, HoststreamError, StackError
from hoststream.stack import Stack
from hoststream.telemetry import configure_logging

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
    return Stack(cfg.state_dir, cfg.lib_dir, brokers=brokers)


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
        console.print(f"[red]configuration error:[/] {exc}", highlight=False)
        sys.exit(2)
    except StackError as exc:
        console.print(f"[red]stack error:[/] {exc}", highlight=False)
        sys.exit(1)
    except HoststreamError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
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

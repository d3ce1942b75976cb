"""``python -m hoststream.streams``: the stream processor; settings from the environment.

``hoststream stream`` is the command users run; this entry point lets tests
and process supervisors start a worker without the CLI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hoststream.errors import ConfigurationError
from hoststream.telemetry import configure_logging

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hoststream.streams", description=__doc__)
    parser.add_argument("--app-id", help="Faust app id and consumer group")
    parser.add_argument("--windows", default="1m,5m", help="window sizes, e.g. 10s,1m,5m")
    parser.add_argument("--grace", type=float, default=10.0, help="grace period in seconds")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-within", type=float, default=0.5, help="seconds")
    parser.add_argument("--rules", type=Path, help="alert rules YAML (default: the built-in set)")
    parser.add_argument("--no-alerts", action="store_true", help="evaluate no alert rules")
    parser.add_argument(
        "--max-future",
        type=float,
        default=3600.0,
        help="seconds an event may be ahead of the clock; 0: no limit",
    )
    parser.add_argument("--session-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    args = parser.parse_args(argv)

    from hoststream.config import load_settings
    from hoststream.streams.app import run_worker

    try:
        settings = load_settings()
        configure_logging("stream", settings.log_level, settings.log_format)
        run_worker(
            settings,
            app_id=args.app_id,
            windows=[w for w in args.windows.split(",") if w.strip()],
            grace_s=args.grace,
            batch_size=args.batch_size,
            batch_within_s=args.batch_within,
            session_timeout_s=args.session_timeout,
            max_future_s=args.max_future or None,
            rules_file=args.rules,
            alerting=not args.no_alerts,
            metrics_port=args.metrics_port,
        )
    except ConfigurationError as exc:  # RuleFileError too
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""Run the benchmarks, write JSON and PNG results to bench/results/, print a summary.

The local stack (of ``HOSTSTREAM_STATE_DIR``, its ports moved by
``HOSTSTREAM_STACK_PORT_OFFSET``) is started if needed; with a running stack's
``stack.env`` sourced (``HOSTSTREAM_KAFKA_BOOTSTRAP`` set), that stack is used
instead.
"""

from __future__ import annotations

import argparse
import os

from rich.console import Console
from rich.table import Table

from bench import alerts, api, pipeline, producer, sinks, store_floor, streams
from bench.common import Result, hardware, stack_for_env

SUITES = {
    "producer": producer.run,
    "streams": streams.run,
    "sinks": sinks.run,
    "alerts": alerts.run,
    "api": api.run,
    "pipeline": pipeline.run,
    "floor": store_floor.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SUITES), help="comma-separated suites")
    args = parser.parse_args()
    if "HOSTSTREAM_KAFKA_BOOTSTRAP" in os.environ:
        # A stack already running elsewhere (its stack.env sourced): measure against it.
        env = dict(os.environ)
    else:
        # HOSTSTREAM_STATE_DIR and HOSTSTREAM_STACK_PORT_OFFSET choose which stack.
        env = {**os.environ, **stack_for_env(dict(os.environ)).up()}
    results: list[Result] = []
    for name in args.only.split(","):
        for result in SUITES[name](env):
            result.save()
            results.append(result)
    table = Table("benchmark", "ratio", "value", title=f"hoststream benchmarks on {hardware()}")
    for result in results:
        for ratio, value in result.ratios.items():
            table.add_row(result.name, ratio, f"{value:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()

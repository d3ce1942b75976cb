"""A sink in its own process, for tests that kill it.

Usage: ``sink_main.py KIND GROUP TOPIC MAX_RECORDS``.
"""

from __future__ import annotations

import logging
import sys

from hoststream.config import load_settings
from hoststream.runtime import Runtime, run_component
from hoststream.sinks import BatchPolicy, run_sink


def main(runtime: Runtime) -> None:
    # Several of these processes share one log: each line says which one wrote it.
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    run_sink(
        runtime,
        kind,  # type: ignore[arg-type]
        group_id=group,
        topics=[topic],
        policy=BatchPolicy(max_records=int(max_records), max_delay_s=0.3),
        # A killed member leaves the group after this, not after the default 45 s.
        consumer_overrides={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )


if __name__ == "__main__":
    kind, group, topic, max_records = sys.argv[1:5]
    run_component(f"sink-{kind}", load_settings(), main)

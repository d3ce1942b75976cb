"""``python -m hoststream.producers.collectors.record FILE``: snapshot this host's sources."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hoststream.producers.collectors.recorded import write_snapshot

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hoststream.producers.collectors.record",
        description="Record this host's collector source data as a JSON snapshot.",
    )
    parser.add_argument("output", type=Path, help="file to write")
    args = parser.parse_args(argv)
    snapshot = write_snapshot(args.output)
    print(
        f"wrote {args.output}: {len(snapshot['cpu_times'])} CPUs, "
        f"{len(snapshot['disk_partitions'])} mounts, {len(snapshot['disk_io_counters'])} "
        f"block devices, {len(snapshot['net_io_counters'])} interfaces",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

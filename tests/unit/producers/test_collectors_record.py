"""Recording a snapshot and replaying it gives the collectors the same data."""

from __future__ import annotations

import json
import sys

import pytest

from hoststream.producers.collectors import (
    LiveSource,
    RecordedSource,
    default_collectors,
    record_snapshot,
)
from hoststream.producers.collectors.record import main
from hoststream.producers.collectors.sources import HostSource
from hoststream.schemas.records import Sample


def collect_all(source: HostSource) -> list[Sample]:
    return [s for c in default_collectors(source) for s in c.collect()]


def test_record_of_a_replay_is_the_same_snapshot(vm):
    again = record_snapshot(vm)

    keys = ("cpu_times", "meminfo", "disk_partitions", "statvfs", "disk_io_counters", "getloadavg",
            "net_io_counters", "boot_time", "kernel_stat", "process_states")  # fmt: skip
    for key in keys:
        assert json.loads(json.dumps(again[key])) == vm.snapshot[key], key
    assert collect_all(RecordedSource(json.loads(json.dumps(again)))) == collect_all(vm)


def test_failed_statvfs_is_recorded_as_null(edge):
    again = record_snapshot(edge)

    assert again["statvfs"]["/mnt/nfs"] is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_main_records_this_host(tmp_path, capsys):
    out = tmp_path / "host.json"

    assert main([str(out)]) == 0

    replay = RecordedSource.from_file(out)
    assert len(replay.cpu_times()) >= 1
    assert "wrote" in capsys.readouterr().err
    # A replay of this host reports the series this host does.
    assert {s.name for s in collect_all(replay)} == {s.name for s in collect_all(LiveSource())}

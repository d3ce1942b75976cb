"""The /proc files read directly, from a recorded /proc tree; psutil replaced by a stand-in."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from hoststream.producers.collectors import LiveSource, default_collectors
from hoststream.producers.collectors.procfs import (
    count_process_states,
    parse_kernel_stat,
    parse_meminfo,
    parse_mounts,
    process_state,
)
from tests.support.paths import DATA

PROC = DATA / "proc"


def test_meminfo_in_bytes_and_unitless_fields_kept():
    info = parse_meminfo((PROC / "meminfo").read_text())

    assert info["MemTotal"] == 24684100 * 1024
    assert info["MemAvailable"] == 23465088 * 1024
    assert info["Cached"] == 881980 * 1024
    assert info["HugePages_Total"] == 0  # a count, not kB
    assert "Active(anon)" in info


def test_kernel_stat_lines():
    stat = parse_kernel_stat((PROC / "stat").read_text())

    assert (stat.forks, stat.procs_running, stat.procs_blocked) == (11603, 1, 0)


def test_kernel_stat_without_the_lines_is_an_error():
    with pytest.raises(ValueError, match="no procs_blocked, procs_running line"):
        parse_kernel_stat("cpu 1 2 3\nprocesses 4\n")


def test_mounts_keep_the_device_and_decode_the_mount_point():
    entries = parse_mounts(
        "none /sys/kernel/tracing tracefs rw 0 0\n"
        "/dev/sdb1 /srv/my\\040data\\011dir xfs ro,relatime 0 0\n"
        "short line\n"
    )

    assert [(e.device, e.mountpoint, e.fstype, e.opts) for e in entries] == [
        ("none", "/sys/kernel/tracing", "tracefs", "rw"),
        ("/dev/sdb1", "/srv/my data\tdir", "xfs", "ro,relatime"),
    ]


def test_recorded_mounts_of_pid_1():
    entries = parse_mounts((PROC / "1" / "mounts").read_text())

    assert ("/dev/vda", "/", "ext4") in [(e.device, e.mountpoint, e.fstype) for e in entries]


@pytest.mark.parametrize(
    ("line", "state"),
    [
        (b"1 (systemd) S 0 1 1 0", "S"),
        (b"4242 (my (odd) proc) D 1 4242", "D"),
        (b"7 (a) b) c) Z 1", "Z"),
        (b"8 () R 1", "R"),
    ],
)
def test_process_state_is_after_the_last_parenthesis(line, state):
    assert process_state(line) == state


def test_count_process_states_skips_non_pids_and_vanished_processes():
    # 1 and 42 are real recorded lines (S), 4242 has parentheses in its name
    # (D), 999 has no stat file (the process exited), self_placeholder is not a pid.
    assert count_process_states(PROC) == {"S": 2, "D": 1}


def fake_psutil(**overrides: object) -> Any:
    """The psutil functions LiveSource calls, returning fixed values."""
    cpu = SimpleNamespace(user=1.0, nice=0.0, system=2.0, idle=3.0, iowait=0.5, irq=0.0,
                          softirq=0.25, steal=0.0)  # fmt: skip
    disk = SimpleNamespace(read_count=1, write_count=2, read_bytes=512, write_bytes=1024,
                           read_time=1500, write_time=20, read_merged_count=0,
                           write_merged_count=0, busy_time=3000)  # fmt: skip
    net = SimpleNamespace(bytes_sent=1, bytes_recv=2, packets_sent=3, packets_recv=4, errin=0,
                          errout=0, dropin=0, dropout=0)  # fmt: skip
    calls = []

    def recorded(name: str, value: object) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            calls.append((name, kwargs))
            return value

        return call

    module = SimpleNamespace(
        cpu_times=recorded("cpu_times", [cpu]),
        disk_io_counters=recorded("disk_io_counters", {"sda": disk}),
        net_io_counters=recorded("net_io_counters", {"eth0": net}),
        getloadavg=recorded("getloadavg", (1.5, 1.0, 0.5)),
        boot_time=recorded("boot_time", 1_700_000_000.0),
        cpu_stats=recorded("cpu_stats", SimpleNamespace(ctx_switches=10, interrupts=20)),
        disk_partitions=recorded(
            "disk_partitions",
            [SimpleNamespace(device="/dev/sda1", mountpoint="/", fstype="ext4", opts="rw")],
        ),
        virtual_memory=recorded(
            "virtual_memory", SimpleNamespace(total=8192, available=4096, free=2048)
        ),
        swap_memory=recorded("swap_memory", SimpleNamespace(total=1024, free=1024)),
        process_iter=recorded(
            "process_iter",
            [SimpleNamespace(info={"status": s}) for s in ("sleeping", "running", "sleeping")],
        ),
    )
    for name, value in overrides.items():
        setattr(module, name, value)
    module.calls = calls
    return module


def statvfs_stub(path):
    return os.statvfs_result((4096, 4096, 100, 40, 30, 50, 20, 20, 0, 255))


def test_live_source_over_a_recorded_proc_tree():
    psutil = fake_psutil()
    source = LiveSource(psutil, proc_root=PROC, statvfs=statvfs_stub)
    samples = {
        c.family: c.collect()
        for c in default_collectors(source, mount_points_exclude=None, fs_types_exclude=None)
    }

    memory = {s.name: s.value for s in samples["memory"]}
    assert memory["node_memory_MemTotal_bytes"] == 24684100 * 1024  # from proc_root, not psutil
    system = {(s.name, s.labels.get("state")): s.value for s in samples["system"]}
    assert system[("node_forks_total", None)] == 11603
    assert system[("node_processes_state", "D")] == 1
    disk = {(s.name, s.labels.get("mountpoint")): s.value for s in samples["disk"]}
    assert disk[("node_filesystem_size_bytes", "/")] == 100 * 4096
    assert disk[("node_filesystem_avail_bytes", "/")] == 30 * 4096
    assert disk[("node_disk_read_time_seconds_total", None)] == 1.5
    assert disk[("node_disk_io_time_seconds_total", None)] == 3.0
    # Raw counters: psutil must not keep its own wrap-around correction.
    assert ("disk_io_counters", {"perdisk": True, "nowrap": False}) in psutil.calls
    assert ("net_io_counters", {"pernic": True, "nowrap": False}) in psutil.calls
    # Mounts come from <proc_root>/1/mounts, not psutil.
    assert all(name != "disk_partitions" for name, _ in psutil.calls)


def test_live_source_without_proc_falls_back_to_psutil(tmp_path):
    psutil = fake_psutil()
    source = LiveSource(psutil, proc_root=tmp_path, statvfs=statvfs_stub)

    assert source.meminfo() == {
        "MemTotal": 8192, "MemAvailable": 4096, "MemFree": 2048, "SwapTotal": 1024,
        "SwapFree": 1024,
    }  # fmt: skip
    assert source.kernel_stat() is None
    assert source.process_states() == {"S": 2, "R": 1}
    assert [p.device for p in source.disk_partitions()] == ["/dev/sda1"]

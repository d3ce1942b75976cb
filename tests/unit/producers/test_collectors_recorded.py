"""Each collector against a snapshot of a Debian 12 VM: exact names, labels, kinds, values."""

from __future__ import annotations

import pytest

from hoststream.producers.collectors import (
    CpuCollector,
    DiskCollector,
    MemoryCollector,
    NetworkCollector,
    RecordedSource,
    SystemCollector,
    default_collectors,
)
from hoststream.producers.collectors.names import MEMINFO_FIELDS
from hoststream.schemas.records import FAMILIES, MetricKind, Sample

COUNTER, GAUGE = MetricKind.COUNTER, MetricKind.GAUGE


def by_key(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Sample]:
    keyed = {(s.name, tuple(sorted(s.labels.items()))): s for s in samples}
    assert len(keyed) == len(samples), "a series appears twice"
    return keyed


def test_cpu_seconds_per_cpu_and_mode(vm):
    everything = CpuCollector(vm).collect()
    samples = [s for s in everything if s.name == "node_cpu_seconds_total"]
    guest = [s for s in everything if s.name == "node_cpu_guest_seconds_total"]

    assert len(samples) == 2 * 8
    assert len(everything) == len(samples) + len(guest)
    assert {s.kind for s in everything} == {COUNTER}
    got = {(s.labels["cpu"], s.labels["mode"]): s.value for s in samples}
    assert got[("0", "user")] == 72.52
    assert got[("0", "idle")] == 1406.85
    assert got[("1", "iowait")] == 3.52
    assert got[("1", "steal")] == 0.16
    assert {mode for _, mode in got} == {
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    }  # fmt: skip
    # guest time is already inside user time on Linux; node_exporter reports it
    # under another name, and so it is not a mode of node_cpu_seconds_total.
    assert all(set(s.labels) == {"cpu", "mode"} for s in everything)
    assert {(s.labels["cpu"], s.labels["mode"]) for s in guest} == {
        ("0", "user"), ("0", "nice"), ("1", "user"), ("1", "nice"),
    }  # fmt: skip


def test_cpu_skips_modes_a_platform_does_not_report(vm):
    darwin_like = dict(vm.snapshot)
    darwin_like["cpu_times"] = [{"user": 1.5, "nice": 0.0, "system": 2.25, "idle": 9.0}]

    samples = CpuCollector(RecordedSource(darwin_like)).collect()

    assert [(s.labels["mode"], s.value) for s in samples] == [
        ("user", 1.5), ("nice", 0.0), ("system", 2.25), ("idle", 9.0),
    ]  # fmt: skip


def test_memory_fields_in_bytes_as_gauges(vm):
    samples = MemoryCollector(vm, MEMINFO_FIELDS).collect()

    assert [(s.name, s.value) for s in samples] == [
        ("node_memory_MemTotal_bytes", 25276518400.0),
        ("node_memory_MemFree_bytes", 23284039680.0),
        ("node_memory_MemAvailable_bytes", 24003440640.0),
        ("node_memory_Buffers_bytes", 9379840.0),
        # The kernel's Cached, not psutil's cached (which adds SReclaimable).
        ("node_memory_Cached_bytes", 912142336.0),
        ("node_memory_SReclaimable_bytes", 130748416.0),
        ("node_memory_Shmem_bytes", 49008640.0),
        ("node_memory_SwapTotal_bytes", 0.0),
        ("node_memory_SwapFree_bytes", 0.0),
    ]
    assert all(s.kind is GAUGE and s.labels == {} for s in samples)


def test_memory_leaves_out_fields_the_host_lacks(vm):
    snapshot = dict(vm.snapshot)
    snapshot["meminfo"] = {"MemTotal": 1024, "MemFree": 512}

    samples = MemoryCollector(RecordedSource(snapshot), MEMINFO_FIELDS).collect()

    assert [s.name for s in samples] == ["node_memory_MemTotal_bytes", "node_memory_MemFree_bytes"]


def test_memory_sends_every_field_by_default_under_node_exporters_names(vm):
    snapshot = dict(vm.snapshot)
    snapshot["meminfo"] = {"MemTotal": 1024, "Active(anon)": 2048, "HugePages_Total": 3}

    samples = MemoryCollector(RecordedSource(snapshot)).collect()

    assert [(s.name, s.value) for s in samples] == [
        ("node_memory_MemTotal_bytes", 1024.0),
        ("node_memory_Active_anon_bytes", 2048.0),
        ("node_memory_HugePages_Total", 3.0),  # a count of pages: no unit
    ]


def test_filesystems_sizes_from_statvfs_with_default_filters(vm):
    samples = DiskCollector(vm).collect_filesystems()

    root = {"device": "/dev/vda", "fstype": "ext4", "mountpoint": "/"}
    mnt = {
        "device": "model_tools_unavailable",
        "fstype": "tmpfs",
        "mountpoint": "/mnt/sandboxing/model_tools_env/v1/python",
    }
    # /proc, /sys, /dev and the cgroup mounts are filtered out; a tmpfs on /mnt is kept
    # (upstream's default; Debian's build also leaves out /mnt).
    assert [dict(s.labels) for s in samples[::7]] == [root, mnt]
    got = by_key(samples)
    key = tuple(sorted(root.items()))
    assert got[("node_filesystem_size_bytes", key)].value == 66053021 * 4096
    assert got[("node_filesystem_free_bytes", key)].value == 62697678 * 4096
    assert got[("node_filesystem_avail_bytes", key)].value == 20519973 * 4096
    assert got[("node_filesystem_files", key)].value == 16777216
    assert got[("node_filesystem_files_free", key)].value == 16340884
    assert got[("node_filesystem_readonly", key)].value == 0
    assert got[("node_filesystem_device_error", key)].value == 0
    # mounted with "ro,nosuid,...": read-only.
    assert got[("node_filesystem_readonly", tuple(sorted(mnt.items())))].value == 1
    assert {s.kind for s in samples} == {GAUGE}


def test_block_devices_in_bytes_and_seconds(vm):
    samples = DiskCollector(vm).collect_devices()

    # loop0..loop7 are excluded by node_exporter's default; zram0 is not.
    assert sorted({s.labels["device"] for s in samples}) == ["vda", "zram0"]
    vda = {s.name: s.value for s in samples if s.labels["device"] == "vda"}
    assert vda == {
        "node_disk_reads_completed_total": 71444,
        "node_disk_reads_merged_total": 8574,
        "node_disk_read_bytes_total": 2319397888,
        "node_disk_read_time_seconds_total": 23.311,  # 23311 ms
        "node_disk_writes_completed_total": 39516,
        "node_disk_writes_merged_total": 38609,
        "node_disk_written_bytes_total": 2085810176,
        "node_disk_write_time_seconds_total": 18.117,
        "node_disk_io_time_seconds_total": 8.316,
    }
    assert {s.kind for s in samples} == {COUNTER}
    assert all(set(s.labels) == {"device"} for s in samples)


def test_network_counters_per_interface(vm):
    samples = NetworkCollector(vm).collect()

    assert sorted({s.labels["device"] for s in samples}) == ["eth0", "ifb0", "ifb1", "lo"]
    eth0 = {s.name: s.value for s in samples if s.labels["device"] == "eth0"}
    assert eth0 == {
        "node_network_receive_bytes_total": 512830494,
        "node_network_transmit_bytes_total": 1142242,
        "node_network_receive_packets_total": 13552,
        "node_network_transmit_packets_total": 8353,
        "node_network_receive_errs_total": 0,
        "node_network_transmit_errs_total": 0,
        "node_network_receive_drop_total": 0,
        "node_network_transmit_drop_total": 0,
    }
    assert {s.kind for s in samples} == {COUNTER}


def test_system_load_boot_kernel_counters_and_process_states(vm):
    samples = SystemCollector(vm).collect()

    assert [(s.name, dict(s.labels), s.value, s.kind) for s in samples] == [
        ("node_load1", {}, 0.3056640625, GAUGE),
        ("node_load5", {}, 0.49462890625, GAUGE),
        ("node_load15", {}, 0.2734375, GAUGE),
        ("node_boot_time_seconds", {}, 1795787830.0, GAUGE),
        ("node_context_switches_total", {}, 1593446, COUNTER),
        ("node_intr_total", {}, 762107, COUNTER),
        ("node_forks_total", {}, 11926, COUNTER),
        ("node_procs_running", {}, 1, GAUGE),
        ("node_procs_blocked", {}, 0, GAUGE),
        ("node_processes_state", {"state": "R"}, 1, GAUGE),
        ("node_processes_state", {"state": "S"}, 62, GAUGE),
        ("node_processes_state", {"state": "D"}, 0, GAUGE),
        ("node_processes_state", {"state": "Z"}, 0, GAUGE),
        ("node_processes_state", {"state": "T"}, 0, GAUGE),
        ("node_processes_state", {"state": "I"}, 36, GAUGE),
    ]


def test_system_reports_unusual_states_and_leaves_out_what_the_platform_lacks(edge):
    snapshot = dict(edge.snapshot)
    states = [
        (s.labels["state"], s.value)
        for s in SystemCollector(RecordedSource(snapshot)).collect()
        if s.name == "node_processes_state"
    ]
    assert states == [("R", 2), ("S", 63), ("D", 0), ("Z", 1), ("T", 0), ("I", 36), ("t", 1)]

    snapshot["kernel_stat"] = None
    snapshot["process_states"] = None
    names = [s.name for s in SystemCollector(RecordedSource(snapshot)).collect()]
    assert names == [
        "node_load1", "node_load5", "node_load15", "node_boot_time_seconds",
        "node_context_switches_total", "node_intr_total",
    ]  # fmt: skip


def test_default_collectors_cover_every_family_in_order(vm):
    collectors = default_collectors(vm)

    assert [c.family for c in collectors] == list(FAMILIES)
    assert all(c.collect() for c in collectors)
    assert [c.family for c in default_collectors(vm, ["system", "cpu"])] == ["system", "cpu"]
    with pytest.raises(ValueError, match="unknown metric family 'gpu'"):
        default_collectors(vm, ["gpu"])


def test_collect_reads_the_source_afresh_each_time(vm):
    snapshot = dict(vm.snapshot)
    source = RecordedSource(snapshot)
    collector = MemoryCollector(source, MEMINFO_FIELDS)
    first = collector.collect()
    snapshot["meminfo"] = {**snapshot["meminfo"], "MemFree": 1024}

    second = collector.collect()

    assert first[1].value == 23284039680
    assert second[1].value == 1024


def test_snapshot_of_another_format_is_refused():
    with pytest.raises(ValueError, match="snapshot format 99"):
        RecordedSource({"format": 99})

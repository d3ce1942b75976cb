"""node_exporter's /proc and /sys collectors against a recorded tree: exact names, labels, values.

``tests/support/data/host`` holds files copied from a Debian 12 VM (kernel 6.18), plus a
hand-written hwmon chip and /proc/schedstat, which that VM does not have.
"""

from __future__ import annotations

import os
import time

import pytest

from hoststream.producers.collectors import (
    DEFAULT_DISK_DEVICE_EXCLUDE,
    FamilyCollector,
    HostFiles,
    default_collectors,
)
from hoststream.producers.collectors.diskstats import DiskStatsPart, NvmePart
from hoststream.producers.collectors.hwmon import HwmonTempPart
from hoststream.producers.collectors.kernel import (
    CpufreqPart,
    FilefdPart,
    OsReleasePart,
    PressurePart,
    SchedstatPart,
    SelinuxPart,
    TimePart,
    Timex,
    TimexPart,
    UnamePart,
)
from hoststream.producers.collectors.memory import VmstatPart
from hoststream.producers.collectors.netstats import (
    ArpPart,
    ConntrackPart,
    NetClassPart,
    NetDevPart,
    NetstatPart,
    SockstatPart,
    SoftnetPart,
    UdpQueuesPart,
)
from hoststream.schemas.records import MetricKind, Sample
from tests.support.paths import DATA

COUNTER, GAUGE = MetricKind.COUNTER, MetricKind.GAUGE


@pytest.fixture
def host() -> HostFiles:
    return HostFiles(DATA / "host")


def values(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    keyed = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
    assert len(keyed) == len(samples), "a series appears twice"
    return keyed


def one(samples: list[Sample], name: str, **labels: str) -> Sample:
    [found] = [s for s in samples if s.name == name and dict(s.labels) == labels]
    return found


def test_netdev_sends_every_proc_net_dev_column_and_nohandler(host):
    samples = NetDevPart(host, device_exclude="^lo$").collect()

    assert {s.labels["device"] for s in samples} == {"eth0", "ifb0", "ifb1"}
    assert one(samples, "node_network_receive_bytes_total", device="eth0").value == 878205050
    assert one(samples, "node_network_transmit_packets_total", device="eth0").value == 24245
    eth0 = {s.name for s in samples if s.labels["device"] == "eth0"}
    assert len(eth0) == 17
    assert "node_network_receive_nohandler_total" in eth0
    assert {s.kind for s in samples} == {COUNTER}


def test_netclass_reads_properties_and_leaves_out_what_the_kernel_refuses(host):
    samples = NetClassPart(host).collect()

    assert one(samples, "node_network_speed_bytes", device="eth0").value == -125000
    assert one(samples, "node_network_mtu_bytes", device="eth0").value == 1400
    assert one(samples, "node_network_flags", device="eth0").value == 0x1003
    assert one(samples, "node_network_up", device="eth0").value == 1
    assert one(samples, "node_network_up", device="lo").value == 0  # operstate "unknown"
    info = one(
        samples,
        "node_network_info",
        device="eth0",
        address="02:fc:00:00:00:01",
        broadcast="ff:ff:ff:ff:ff:ff",
        duplex="unknown",
        operstate="up",
    )
    assert info.value == 1
    # A down interface has no carrier to report: the series is left out.
    assert not [
        s for s in samples if s.name == "node_network_carrier" and s.labels["device"] == "ifb0"
    ]
    assert one(samples, "node_network_carrier_changes_total", device="eth0").kind is COUNTER


def test_netstat_sends_node_exporters_default_fields(host):
    samples = NetstatPart(host).collect()
    got = values(samples)

    assert got[("node_netstat_Tcp_ActiveOpens", ())] == 4000
    assert got[("node_netstat_Tcp_CurrEstab", ())] == 72
    assert got[("node_netstat_Udp6_InDatagrams", ())] == 0
    assert ("node_netstat_Tcp_RtoMin", ()) not in got
    assert len(samples) == 40
    assert one(samples, "node_netstat_Tcp_CurrEstab").kind is GAUGE
    assert one(samples, "node_netstat_Tcp_InSegs").kind is COUNTER


def test_sockstat_pages_also_in_bytes(host):
    samples = SockstatPart(host, page_size=4096).collect()

    assert one(samples, "node_sockstat_sockets_used").value == 106
    assert one(samples, "node_sockstat_TCP_inuse").value == 40
    assert one(samples, "node_sockstat_TCP_mem").value == 8
    assert one(samples, "node_sockstat_TCP_mem_bytes").value == 8 * 4096
    assert one(samples, "node_sockstat_TCP6_inuse").value == 41


def test_softnet_arp_udp_queues_and_conntrack(host):
    softnet = SoftnetPart(host).collect()
    assert one(softnet, "node_softnet_processed_total", cpu="0").value == 0xF0EA
    assert one(softnet, "node_softnet_processed_total", cpu="1").value == 0x25251
    assert one(ArpPart(host).collect(), "node_arp_entries", device="eth0").value == 1
    queues = UdpQueuesPart(host).collect()
    assert {(s.labels["ip"], s.labels["queue"]) for s in queues} == {
        ("v4", "rx"), ("v4", "tx"), ("v6", "rx"), ("v6", "tx"),
    }  # fmt: skip
    conntrack = ConntrackPart(host).collect()
    assert one(conntrack, "node_nf_conntrack_entries_limit").value == 262144
    assert one(conntrack, "node_nf_conntrack_stat_drop").value == 0


def test_diskstats_every_field_in_node_exporters_units(host):
    samples = DiskStatsPart(host, device_exclude=DEFAULT_DISK_DEVICE_EXCLUDE).collect()
    vda = {s.name: s.value for s in samples if s.labels.get("device") == "vda"}

    assert vda["node_disk_reads_completed_total"] == 98825
    assert vda["node_disk_read_bytes_total"] == 4753946 * 512
    assert vda["node_disk_read_time_seconds_total"] == 53.296
    assert vda["node_disk_io_now"] == 0
    assert vda["node_disk_io_time_weighted_seconds_total"] == 188.917
    assert vda["node_disk_discarded_sectors_total"] == 799328  # sectors, as node_exporter
    assert vda["node_disk_flush_requests_time_seconds_total"] == 3.344
    assert len(vda) == 18
    info = one(samples, "node_disk_info", device="vda", major="254", minor="0")
    assert info.kind is GAUGE
    assert not any(s.labels.get("device", "").startswith("loop") for s in samples)


def test_nvme_controllers_as_info(host):
    [info] = NvmePart(host).collect()

    assert dict(info.labels) == {
        "device": "nvme0", "firmware_revision": "3B2QGXA7", "model": "Samsung SSD 980 PRO 1TB",
        "serial": "S5GXNF0R123456", "state": "live",
    }  # fmt: skip


def test_vmstat_default_fields(host):
    samples = VmstatPart(host).collect()

    assert one(samples, "node_vmstat_pgfault").value == 29177052
    assert one(samples, "node_vmstat_pgmajfault").value == 2587
    assert one(samples, "node_vmstat_oom_kill").value == 0
    assert {s.name for s in samples} == {
        "node_vmstat_pgpgin", "node_vmstat_pgpgout", "node_vmstat_pswpin", "node_vmstat_pswpout",
        "node_vmstat_pgfault", "node_vmstat_pgmajfault", "node_vmstat_oom_kill",
    }  # fmt: skip


def test_pressure_totals_in_seconds(host):
    got = values(PressurePart(host).collect())

    assert got[("node_pressure_io_waiting_seconds_total", ())] == 11.476653
    assert got[("node_pressure_io_stalled_seconds_total", ())] == 4.099475
    assert ("node_pressure_cpu_stalled_seconds_total", ()) not in got  # as node_exporter 1.5


def test_uname_os_time_filefd_and_selinux(host):
    uname = os.uname_result(("Linux", "vm", "6.18.44", "#1 SMP", "x86_64"))
    [info] = UnamePart(host, uname=lambda: uname).collect()
    assert dict(info.labels) == {
        "domainname": "(none)", "machine": "x86_64", "nodename": "vm",
        "release": "6.18.44", "sysname": "Linux", "version": "#1 SMP",
    }  # fmt: skip

    os_info, os_version = OsReleasePart(host).collect()
    assert os_info.labels["pretty_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert "build_id" not in os_info.labels  # empty: left out, as Prometheus drops it
    assert (os_version.value, dict(os_version.labels)) == (
        12.0,
        {"id": "debian", "name": "Debian GNU/Linux"},
    )

    cet = time.struct_time((2026, 12, 1, 15, 0, 0, 1, 335, 0, "CET", 3600))
    samples = TimePart(host, clock=lambda: 1_796_126_496.125, localtime=lambda _: cet).collect()
    assert one(samples, "node_time_seconds").value == 1_796_126_496.125
    assert one(samples, "node_time_zone_offset_seconds", time_zone="CET").value == 3600
    assert one(samples, "node_time_clocksource_current_info", clocksource="tsc", device="0")

    assert values(FilefdPart(host).collect()) == {
        ("node_filefd_allocated", ()): 4211,
        ("node_filefd_maximum", ()): 2466116,
    }
    assert values(SelinuxPart(host).collect()) == {("node_selinux_enabled", ()): 0}


def test_timex_units_as_node_exporter():
    timex = Timex(
        state=5, offset=1500, freq=655360, maxerror=16000000, esterror=16000000, status=0x2040,
        constant=2, tick=10000, ppsfreq=0, jitter=2000, shift=0, stabil=0, jitcnt=3, calcnt=0,
        errcnt=0, stbcnt=0, tai=37,
    )  # fmt: skip
    got = values(TimexPart(lambda: timex).collect())

    assert got[("node_timex_sync_status", ())] == 0  # state 5: TIME_ERROR
    assert got[("node_timex_offset_seconds", ())] == 1.5e-6  # STA_NANO: nanoseconds
    assert got[("node_timex_frequency_adjustment_ratio", ())] == 1 + 10 / 1e6
    assert got[("node_timex_maxerror_seconds", ())] == 16
    assert got[("node_timex_tick_seconds", ())] == 0.01
    assert got[("node_timex_tai_offset_seconds", ())] == 37
    assert len(got) == 17
    assert TimexPart(lambda: None).collect() == []


def test_hwmon_temperatures_named_after_the_device(host):
    samples = HwmonTempPart(host).collect()
    chip = "platform_coretemp_0"

    assert one(samples, "node_hwmon_temp_celsius", chip=chip, sensor="temp1").value == 45
    assert one(samples, "node_hwmon_temp_celsius", chip=chip, sensor="temp2").value == 38.5
    assert one(samples, "node_hwmon_temp_crit_celsius", chip=chip, sensor="temp1").value == 100
    assert one(samples, "node_hwmon_chip_names", chip=chip, chip_name="coretemp").value == 1
    label = one(samples, "node_hwmon_sensor_label", chip=chip, sensor="temp1", label="package_id_0")
    assert label.value == 1


def test_schedstat_per_cpu_in_seconds(host):
    got = values(SchedstatPart(host).collect())

    assert got[("node_schedstat_running_seconds_total", (("cpu", "0"),))] == 2406.434219516
    assert got[("node_schedstat_timeslices_total", (("cpu", "1"),))] == 15384003


def test_cpufreq_in_hertz_leaving_out_what_cannot_be_read(host):
    got = values(CpufreqPart(host).collect())

    assert got[("node_cpu_frequency_hertz", (("cpu", "0"),))] == 2_400_000_000
    assert got[("node_cpu_scaling_frequency_hertz", (("cpu", "0"),))] == 2_394_311_000
    assert got[("node_cpu_scaling_frequency_min_hertz", (("cpu", "1"),))] == 800_000_000
    # cpu1's cpuinfo_* files are missing (root-only on some kernels): left out.
    assert ("node_cpu_frequency_hertz", (("cpu", "1"),)) not in got
    assert len(got) == 9


def test_missing_files_mean_no_series_not_an_error(tmp_path):
    empty = HostFiles(tmp_path)
    parts = (
        NetDevPart, NetClassPart, NetstatPart, VmstatPart, DiskStatsPart, PressurePart,
        SchedstatPart, HwmonTempPart, ConntrackPart, CpufreqPart, NvmePart,
    )  # fmt: skip
    for part in parts:
        assert part(empty).collect() == [], part


def test_a_failing_part_costs_only_its_own_series(host):
    class Broken:
        def collect(self) -> list[Sample]:
            raise ValueError("garbled /proc file")

    family = FamilyCollector("system", [Broken(), FilefdPart(host)])

    assert [s.name for s in family.collect()] == ["node_filefd_allocated", "node_filefd_maximum"]
    assert [s.name for s in family.collect()] == ["node_filefd_allocated", "node_filefd_maximum"]


def test_default_collectors_over_a_recorded_tree_use_its_files(vm, host):
    collectors = default_collectors(vm, files=host)
    by_family = {c.family: {s.name for s in c.collect()} for c in collectors}

    assert "node_vmstat_pgfault" in by_family["memory"]
    assert "node_disk_io_now" in by_family["disk"]
    assert "node_filesystem_avail_bytes" in by_family["disk"]
    assert {"node_netstat_Tcp_InSegs", "node_network_speed_bytes"} <= by_family["network"]
    assert {"node_uname_info", "node_os_info", "node_time_seconds"} <= by_family["system"]
    assert "node_schedstat_timeslices_total" in by_family["cpu"]

"""The series hoststream emits per family, named as node_exporter 1.5 names them.

The real collectors and the simulation both build their samples from these
tables, so a simulated host can never drift from what a real one sends.
``docs/metrics.md`` is the human-readable form of this module.
"""

from __future__ import annotations

__all__ = [
    "BOOT_TIME",
    "CONTEXT_SWITCHES",
    "CPU_MODES",
    "CPU_SECONDS",
    "DISKSTATS_COUNTERS",
    "FILESYSTEM_GAUGES",
    "FORKS",
    "INTERRUPTS",
    "LOAD_AVERAGES",
    "MEMINFO_FIELDS",
    "NETDEV_COUNTERS",
    "PROCESSES_STATE",
    "PROCESS_STATES_ALWAYS",
    "PROCS_BLOCKED",
    "PROCS_RUNNING",
    "UNAME_INFO",
    "meminfo_metric",
]

# --- cpu -------------------------------------------------------------------

CPU_SECONDS = "node_cpu_seconds_total"
#: The modes node_exporter's cpu collector reports under ``node_cpu_seconds_total``.
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

# --- memory ----------------------------------------------------------------

#: /proc/meminfo fields reported as ``node_memory_<field>_bytes``: the ones the
#: common node_exporter dashboards compute "used", "cache" and "swap" from.
MEMINFO_FIELDS = (
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "SReclaimable",
    "Shmem",
    "SwapTotal",
    "SwapFree",
)


def meminfo_metric(field: str) -> str:
    """The node_exporter name of a /proc/meminfo field given in kB, e.g. ``MemTotal``."""
    return f"node_memory_{field}_bytes"


# --- disk: filesystems (gauges, labels device, fstype, mountpoint) ---------

#: In node_exporter's order. ``device_error`` is sent for every filesystem; the
#: others only when statvfs succeeded, as node_exporter does.
FILESYSTEM_GAUGES = (
    "node_filesystem_device_error",
    "node_filesystem_size_bytes",
    "node_filesystem_free_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "node_filesystem_readonly",
)

# --- disk: block devices (counters, label device) ---------------------------

#: (metric name, psutil ``disk_io_counters`` field, divisor to the metric's unit).
#: psutil gives times in milliseconds; node_exporter reports seconds.
DISKSTATS_COUNTERS: tuple[tuple[str, str, int], ...] = (
    ("node_disk_reads_completed_total", "read_count", 1),
    ("node_disk_reads_merged_total", "read_merged_count", 1),
    ("node_disk_read_bytes_total", "read_bytes", 1),
    ("node_disk_read_time_seconds_total", "read_time", 1000),
    ("node_disk_writes_completed_total", "write_count", 1),
    ("node_disk_writes_merged_total", "write_merged_count", 1),
    ("node_disk_written_bytes_total", "write_bytes", 1),
    ("node_disk_write_time_seconds_total", "write_time", 1000),
    ("node_disk_io_time_seconds_total", "busy_time", 1000),
)

# --- network (counters, label device) ---------------------------------------

#: (metric name, psutil ``net_io_counters`` field).
NETDEV_COUNTERS = (
    ("node_network_receive_bytes_total", "bytes_recv"),
    ("node_network_transmit_bytes_total", "bytes_sent"),
    ("node_network_receive_packets_total", "packets_recv"),
    ("node_network_transmit_packets_total", "packets_sent"),
    ("node_network_receive_errs_total", "errin"),
    ("node_network_transmit_errs_total", "errout"),
    ("node_network_receive_drop_total", "dropin"),
    ("node_network_transmit_drop_total", "dropout"),
)

# --- system -----------------------------------------------------------------

LOAD_AVERAGES = ("node_load1", "node_load5", "node_load15")
BOOT_TIME = "node_boot_time_seconds"
CONTEXT_SWITCHES = "node_context_switches_total"
INTERRUPTS = "node_intr_total"
FORKS = "node_forks_total"
PROCS_RUNNING = "node_procs_running"
PROCS_BLOCKED = "node_procs_blocked"
PROCESSES_STATE = "node_processes_state"
#: Value 1, labelled with the kernel's uname (domainname, machine, nodename,
#: release, sysname, version): node_exporter dashboards pick hosts by it.
UNAME_INFO = "node_uname_info"
#: States always reported (0 when no process is in them), so a query such as
#: ``node_processes_state{state="Z"} > 0`` has a series to look at; node_exporter
#: reports only the states it saw. Any other state seen is reported as well.
PROCESS_STATES_ALWAYS = ("R", "S", "D", "Z", "T", "I")

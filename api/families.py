"""Which series belong to which metric family, for the ``latest`` endpoint."""

from __future__ import annotations

__all__ = ["FAMILY_SELECTORS"]

#: PromQL name regexes of each family's node_exporter-named series.
FAMILY_SELECTORS = {
    "cpu": "node_cpu_.+|node_schedstat_.+",
    "memory": "node_memory_.+|node_vmstat_.+",
    "disk": "node_(filesystem|disk|nvme)_.+",
    "network": (
        "node_network_.+|node_netstat_.+|node_sockstat_.+|node_softnet_.+|node_arp_entries"
        "|node_udp_queues|node_nf_conntrack_.+"
    ),
    "system": (
        "node_load(1|5|15)|node_boot_time_seconds|node_procs_(running|blocked)"
        "|node_processes_state|node_context_switches_total|node_intr_total|node_forks_total"
        "|node_uname_info|node_os_(info|version)|node_time_.+|node_timex_.+|node_filefd_.+"
        "|node_entropy_.+|node_pressure_.+|node_selinux_.+|node_hwmon_.+|node_thermal_zone_temp"
        "|node_cooling_device_.+"
    ),
}

"""Which series belong to which metric family, for the ``latest`` endpoint."""

from __future__ import annotations

__all__ = ["FAMILY_SELECTORS"]

#: PromQL name regexes of each family's node_exporter-named series.
FAMILY_SELECTORS = {
    "cpu": "node_cpu_.+",
    "memory": "node_memory_.+",
    "disk": "node_(filesystem|disk)_.+",
    "network": "node_network_.+",
    "system": (
        "node_load(1|5|15)|node_boot_time_seconds|node_procs_(running|blocked)"
        "|node_processes_state|node_context_switches_total|node_intr_total|node_forks_total"
    ),
}

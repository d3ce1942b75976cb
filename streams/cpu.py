"""CPU utilisation derived from node_exporter's ``node_cpu_seconds_total``.

``node_cpu_seconds_total{cpu,mode}`` counts the seconds each CPU spent in each
mode. Its per-second rate is already the fraction of time in that mode (a
window's aggregate carries it as ``rate_per_second``). Utilisation is the busy
share over the window:

    busy(cpu) = 1 - rate(idle) / sum over modes of rate(mode)

Dividing by the sum of the mode rates, rather than by 1, keeps the ratio in
[0, 1] when the kernel's tick accounting drifts from wall time. ``iowait``
counts as busy, as in the usual ``1 - rate(idle)`` dashboards. The host-wide
ratio sums the rates over all CPUs before dividing, so every CPU weighs the same.
The ratios are computed with the windows, in :mod:`streams.aggregator`.
"""

from __future__ import annotations

__all__ = ["CPU_BUSY_RATIO", "CPU_SECONDS"]

CPU_SECONDS = "node_cpu_seconds_total"
#: Derived gauge: ``{cpu="N"}`` per CPU, no labels for the whole host.
CPU_BUSY_RATIO = "hoststream_cpu_busy_ratio"

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
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CPU_BUSY_RATIO", "CPU_SECONDS", "busy_ratios"]

CPU_SECONDS = "node_cpu_seconds_total"
#: Derived gauge: ``{cpu="N"}`` per CPU, no labels for the whole host.
CPU_BUSY_RATIO = "hoststream_cpu_busy_ratio"

Labels = tuple[tuple[str, str], ...]


def _busy(idle: float, total: float) -> float:
    return min(1.0, max(0.0, 1.0 - idle / total))


def busy_ratios(rates: Iterable[tuple[Labels, float]]) -> list[tuple[Labels, float]]:
    """Busy ratios of one window from its ``node_cpu_seconds_total`` counter rates.

    Args:
        rates: (sorted labels, rate per second) of each counter series of the
            window that has a rate (two samples or more).

    Returns:
        ``(("cpu", N),)`` and its ratio per CPU with an idle rate, then ``()``
        and the host-wide ratio; nothing when no CPU has an idle rate.
    """
    idle: dict[str, float] = {}
    total: dict[str, float] = {}
    # Sorted: float sums must not depend on the order the series arrived in.
    for labels, rate in sorted(rates):
        label_map = dict(labels)
        cpu = label_map.get("cpu")
        if cpu is None:
            continue
        total[cpu] = total.get(cpu, 0.0) + rate
        if label_map.get("mode") == "idle":
            idle[cpu] = rate
    usable = sorted(cpu for cpu in idle if total[cpu] > 0)
    ratios: list[tuple[Labels, float]] = [
        ((("cpu", cpu),), _busy(idle[cpu], total[cpu])) for cpu in usable
    ]
    if usable:
        host_total = sum(total[cpu] for cpu in usable)
        ratios.append(((), _busy(sum(idle[cpu] for cpu in usable), host_total)))
    return ratios

"""``system``: load, boot time, kernel activity counters and processes by state."""

from __future__ import annotations

from hoststream.producers.collectors.names import (
    BOOT_TIME,
    CONTEXT_SWITCHES,
    FORKS,
    INTERRUPTS,
    LOAD_AVERAGES,
    PROCESS_STATES_ALWAYS,
    PROCESSES_STATE,
    PROCS_BLOCKED,
    PROCS_RUNNING,
)
from hoststream.producers.collectors.sources import SystemSource
from hoststream.schemas.records import MetricKind, Sample

__all__ = ["SystemCollector"]


class SystemCollector:
    """node_exporter's loadavg and stat collectors, and the state part of its processes collector.

    Args:
        source: psutil's ``getloadavg``, ``boot_time`` and ``cpu_stats``, plus
            ``kernel_stat()`` (forks, runnable and blocked tasks) and
            ``process_states()``; either may return ``None`` where the platform
            has no /proc, and their samples are then left out.
        process_states: whether to send ``node_processes_state``; False: the
            processes are not walked at all.
    """

    family = "system"

    def __init__(self, source: SystemSource, *, process_states: bool = True) -> None:
        self._source = source
        self._process_states = process_states
        self._state_labels: dict[str, dict[str, str]] = {}

    def collect(self) -> list[Sample]:
        gauge, counter = MetricKind.GAUGE, MetricKind.COUNTER
        src = self._source
        samples = [
            Sample(name, float(value), {}, gauge)
            for name, value in zip(LOAD_AVERAGES, src.getloadavg(), strict=True)
        ]
        samples.append(Sample(BOOT_TIME, float(src.boot_time()), {}, gauge))
        stats = src.cpu_stats()
        samples.append(Sample(CONTEXT_SWITCHES, float(stats.ctx_switches), {}, counter))
        samples.append(Sample(INTERRUPTS, float(stats.interrupts), {}, counter))
        kernel = src.kernel_stat()
        if kernel is not None:
            samples.append(Sample(FORKS, float(kernel.forks), {}, counter))
            samples.append(Sample(PROCS_RUNNING, float(kernel.procs_running), {}, gauge))
            samples.append(Sample(PROCS_BLOCKED, float(kernel.procs_blocked), {}, gauge))
        states = src.process_states() if self._process_states else None
        if states is not None:
            for state in (*PROCESS_STATES_ALWAYS, *sorted(states.keys() - PROCESS_STATES_ALWAYS)):
                count = float(states.get(state, 0))
                samples.append(Sample(PROCESSES_STATE, count, self._state_label(state), gauge))
        return samples

    def _state_label(self, state: str) -> dict[str, str]:
        labels = self._state_labels.get(state)
        if labels is None:
            labels = self._state_labels[state] = {"state": state}
        return labels

"""``cpu``: seconds each CPU spent in each mode, as node_exporter's cpu collector."""

from __future__ import annotations

from hoststream.producers.collectors.names import CPU_MODES, CPU_SECONDS
from hoststream.producers.collectors.sources import CpuSource
from hoststream.schemas.records import MetricKind, Sample

__all__ = ["CPU_GUEST_SECONDS", "CpuCollector"]

CPU_GUEST_SECONDS = "node_cpu_guest_seconds_total"
# psutil's attribute, and node_exporter's mode label for it.
_GUEST_MODES = (("guest", "user"), ("guest_nice", "nice"))


class CpuCollector:
    """``node_cpu_seconds_total{cpu, mode}``, one counter per CPU and mode.

    The ``cpu`` label is the CPU's position in psutil's list, which is the
    kernel's CPU number unless some CPUs are offline (node_exporter uses the
    number from ``/proc/stat``). Modes a platform does not report are left out.
    """

    family = "cpu"

    def __init__(self, source: CpuSource) -> None:
        self._source = source
        # Label dicts are built once: the same CPUs come back every interval.
        self._labels: dict[tuple[int, str], dict[str, str]] = {}

    def _label(self, cpu: int, mode: str) -> dict[str, str]:
        key = (cpu, mode)
        labels = self._labels.get(key)
        if labels is None:
            labels = self._labels[key] = {"cpu": str(cpu), "mode": mode}
        return labels

    def collect(self) -> list[Sample]:
        samples = []
        for cpu, times in enumerate(self._source.cpu_times(percpu=True)):
            for mode in CPU_MODES:
                value = getattr(times, mode, None)
                if value is None:
                    continue
                samples.append(
                    Sample(CPU_SECONDS, float(value), self._label(cpu, mode), MetricKind.COUNTER)
                )
            for attr, mode in _GUEST_MODES:
                value = getattr(times, attr, None)
                if value is not None:
                    labels = self._label(cpu, mode)
                    samples.append(
                        Sample(CPU_GUEST_SECONDS, float(value), labels, MetricKind.COUNTER)
                    )
        return samples

"""Temperatures: node_exporter's hwmon (temperature sensors) and thermal_zone collectors.

Both read /sys through a :class:`~hoststream.producers.collectors.files.FileSource`
and send nothing on hosts without sensors (most virtual machines).
"""

from __future__ import annotations

import re

from hoststream.producers.collectors.files import FileSource
from hoststream.schemas.records import MetricKind, Sample

__all__ = ["HwmonTempPart", "ThermalZonePart", "clean_name"]

GAUGE = MetricKind.GAUGE
_INVALID = re.compile(r"[^a-z0-9:_]")
_TEMP_FILE = re.compile(r"^temp(\d+)_(\w+)$")


def clean_name(name: str) -> str:
    """node_exporter's ``cleanMetricName``: lower case, other characters to ``_``, trimmed."""
    return _INVALID.sub("_", name.strip().lower()).strip("_")


class HwmonTempPart:
    """``node_hwmon_temp_celsius{chip, sensor}`` and the other ``temp*`` properties of
    /sys/class/hwmon, plus ``node_hwmon_chip_names`` and ``node_hwmon_sensor_label``.

    The ``chip`` label is node_exporter 1.5's: ``<bus>_<device>`` from the
    resolved ``device`` link, else the ``name`` file, else ``hwmonN``. Only
    temperature sensors are read; fans, voltages and power are not.
    """

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def _chip(self, directory: str) -> str:
        if self._files.exists(f"{directory}/device"):
            device = self._files.realpath(f"{directory}/device").rstrip("/")
            prefix, _, name = device.rpartition("/")
            bus = prefix.rpartition("/")[2]
            if clean_name(bus) and clean_name(name):
                return f"{clean_name(bus)}_{clean_name(name)}"
            if clean_name(name):
                return clean_name(name)
        try:
            named = clean_name(self._files.read(f"{directory}/name"))
            if named:
                return named
        except OSError:
            pass
        return clean_name(self._files.realpath(directory).rpartition("/")[2])

    def collect(self) -> list[Sample]:
        try:
            chips = self._files.listdir("/sys/class/hwmon")
        except OSError:
            return []
        samples = []
        for entry in chips:
            directory = f"/sys/class/hwmon/{entry}"
            try:
                names = self._files.listdir(directory)
            except OSError:
                continue
            chip = self._chip(directory)
            try:
                chip_name = self._files.read(f"{directory}/name").strip()
                samples.append(
                    Sample(
                        "node_hwmon_chip_names", 1.0, {"chip": chip, "chip_name": chip_name}, GAUGE
                    )
                )
            except OSError:
                pass
            for file in names:
                match = _TEMP_FILE.match(file)
                if match is None:
                    continue
                number, prop = match.groups()
                sensor = f"temp{number}"
                labels = {"chip": chip, "sensor": sensor}
                try:
                    raw = self._files.read(f"{directory}/{file}").strip()
                except OSError:
                    continue
                if prop == "label":
                    labels = {**labels, "label": clean_name(raw)}
                    samples.append(Sample("node_hwmon_sensor_label", 1.0, labels, GAUGE))
                    continue
                try:
                    value = float(raw)
                except ValueError:
                    continue
                if prop in ("alarm", "fault"):
                    samples.append(Sample(f"node_hwmon_temp_{prop}", value, labels, GAUGE))
                elif prop == "beep":
                    samples.append(Sample("node_hwmon_temp_beep_enabled", value, labels, GAUGE))
                elif prop == "type":
                    samples.append(Sample("node_hwmon_temp_type", value, labels, GAUGE))
                else:
                    name = (
                        "node_hwmon_temp_celsius"
                        if prop == "input"
                        else f"node_hwmon_temp_{clean_name(prop)}_celsius"
                    )
                    samples.append(Sample(name, value / 1000, labels, GAUGE))
        return samples


class ThermalZonePart:
    """``node_thermal_zone_temp{type, zone}`` (°C) and ``node_cooling_device_{cur,max}_state``."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        try:
            entries = self._files.listdir("/sys/class/thermal")
        except OSError:
            return []
        samples = []
        for entry in entries:
            base = f"/sys/class/thermal/{entry}"
            try:
                kind = self._files.read(f"{base}/type").strip()
                if entry.startswith("thermal_zone"):
                    temp = int(self._files.read(f"{base}/temp"))
                    labels = {"type": kind, "zone": entry.removeprefix("thermal_zone")}
                    samples.append(Sample("node_thermal_zone_temp", temp / 1000, labels, GAUGE))
                elif entry.startswith("cooling_device"):
                    labels = {"name": entry.removeprefix("cooling_device"), "type": kind}
                    for state in ("cur", "max"):
                        value = float(self._files.read(f"{base}/{state}_state"))
                        samples.append(
                            Sample(f"node_cooling_device_{state}_state", value, labels, GAUGE)
                        )
            except (OSError, ValueError):
                continue
        return samples

"""node_exporter's small kernel collectors: uname, os, time, timex, filefd, entropy,
pressure, selinux and schedstat.

Each part reads a :class:`~hoststream.producers.collectors.files.FileSource`
(and, for what only a system call gives, a function passed in), and returns
``[]`` where the host does not have the file, as node_exporter leaves a
collector's series out when its file is missing. Labels with an empty value are
left out: Prometheus treats them as absent.
"""

from __future__ import annotations

import ctypes
import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hoststream.producers.collectors.files import FileSource
from hoststream.producers.collectors.names import UNAME_INFO
from hoststream.schemas.records import MetricKind, Sample

__all__ = [
    "CpufreqPart",
    "EntropyPart",
    "FilefdPart",
    "OsReleasePart",
    "PressurePart",
    "SchedstatPart",
    "SelinuxPart",
    "TimePart",
    "Timex",
    "TimexPart",
    "UnamePart",
    "read_adjtimex",
]

GAUGE = MetricKind.GAUGE
COUNTER = MetricKind.COUNTER


def info_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """An info series' labels without the empty ones (Prometheus drops them anyway)."""
    return {k: v for k, v in labels.items() if v}


class UnamePart:
    """``node_uname_info{domainname, machine, nodename, release, sysname, version}`` 1.

    Args:
        files: for ``/proc/sys/kernel/domainname``.
        uname: ``os.uname`` or a stand-in.
    """

    def __init__(self, files: FileSource, uname: Callable[[], os.uname_result] = os.uname) -> None:
        self._files = files
        self._uname = uname

    def collect(self) -> list[Sample]:
        u = self._uname()
        try:
            domain = self._files.read("/proc/sys/kernel/domainname").strip()
        except OSError:
            domain = ""
        labels = {
            "domainname": domain,
            "machine": u.machine,
            "nodename": u.nodename,
            "release": u.release,
            "sysname": u.sysname,
            "version": u.version,
        }
        return [Sample(UNAME_INFO, 1.0, info_labels(labels), GAUGE)]


_OS_INFO_KEYS = (
    "BUILD_ID",
    "ID",
    "ID_LIKE",
    "IMAGE_ID",
    "IMAGE_VERSION",
    "NAME",
    "PRETTY_NAME",
    "VARIANT",
    "VARIANT_ID",
    "VERSION",
    "VERSION_CODENAME",
    "VERSION_ID",
)


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines of os-release(5), with shell quoting removed."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[key] = value.replace('\\"', '"')
    return fields


def _leading_version(version_id: str) -> float:
    # node_exporter turns "12" into 12 and "22.04" into 22.04, and anything
    # else into its leading number (0 when there is none).
    digits = ""
    for char in version_id:
        if char.isdigit() or (char == "." and "." not in digits and digits):
            digits += char
        else:
            break
    try:
        return float(digits.rstrip("."))
    except ValueError:
        return 0.0


class OsReleasePart:
    """``node_os_info`` (os-release fields as labels) and ``node_os_version{id, id_like, name}``."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        for path in ("/etc/os-release", "/usr/lib/os-release"):
            try:
                fields = parse_os_release(self._files.read(path))
                break
            except OSError:
                continue
        else:
            return []
        info = info_labels({key.lower(): fields.get(key, "") for key in _OS_INFO_KEYS})
        version = info_labels(
            {
                "id": fields.get("ID", ""),
                "id_like": fields.get("ID_LIKE", ""),
                "name": fields.get("NAME", ""),
            }
        )
        return [
            Sample("node_os_info", 1.0, info, GAUGE),
            Sample(
                "node_os_version", _leading_version(fields.get("VERSION_ID", "")), version, GAUGE
            ),
        ]


_CLOCKSOURCE = "/sys/devices/system/clocksource"


class TimePart:
    """node_exporter's time collector: the clock, the zone's offset, the clock sources.

    Args:
        files: for ``/sys/devices/system/clocksource``.
        clock: wall-clock seconds (``time.time``).
        localtime: ``time.localtime`` or a stand-in, for the zone name and offset.
    """

    def __init__(
        self,
        files: FileSource,
        clock: Callable[[], float] = time.time,
        localtime: Callable[[float], time.struct_time] = time.localtime,
    ) -> None:
        self._files = files
        self._clock = clock
        self._localtime = localtime

    def collect(self) -> list[Sample]:
        now = self._clock()
        local = self._localtime(now)
        samples = [
            Sample("node_time_seconds", now, {}, GAUGE),
            Sample(
                "node_time_zone_offset_seconds",
                float(local.tm_gmtoff),
                {"time_zone": local.tm_zone},
                GAUGE,
            ),
        ]
        try:
            devices = [d for d in self._files.listdir(_CLOCKSOURCE) if d.startswith("clocksource")]
        except OSError:
            return samples
        for device in devices:
            number = device.removeprefix("clocksource")
            base = f"{_CLOCKSOURCE}/{device}"
            try:
                available = self._files.read(f"{base}/available_clocksource").split()
                current = self._files.read(f"{base}/current_clocksource").strip()
            except OSError:
                continue
            samples += [
                Sample(
                    "node_time_clocksource_available_info",
                    1.0,
                    {"clocksource": name, "device": number},
                    GAUGE,
                )
                for name in available
            ]
            samples.append(
                Sample(
                    "node_time_clocksource_current_info",
                    1.0,
                    {"clocksource": current, "device": number},
                    GAUGE,
                )
            )
        return samples


@dataclass(frozen=True, slots=True)
class Timex:
    """What ``adjtimex(2)`` reports (read-only call), in the kernel's units."""

    state: int
    offset: int
    freq: int
    maxerror: int
    esterror: int
    status: int
    constant: int
    tick: int
    ppsfreq: int
    jitter: int
    shift: int
    stabil: int
    jitcnt: int
    calcnt: int
    errcnt: int
    stbcnt: int
    tai: int


class _CTimeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _CTimex(ctypes.Structure):
    # struct timex of <sys/timex.h>; ctypes applies the C alignment rules.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _CTimeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # The process' own symbols, the C library's among them: ctypes.util's
    # find_library would load subprocess (and run ldconfig) to name it.
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def read_adjtimex() -> Timex | None:
    """This host's kernel clock state (``adjtimex`` with no modes set), or None off Linux."""
    libc = _libc()
    if libc is None or not hasattr(libc, "adjtimex"):
        return None
    buf = _CTimex()
    state = libc.adjtimex(ctypes.byref(buf))
    if state < 0:
        return None
    return Timex(
        state, buf.offset, buf.freq, buf.maxerror, buf.esterror, buf.status, buf.constant,
        buf.tick, buf.ppsfreq, buf.jitter, buf.shift, buf.stabil, buf.jitcnt, buf.calcnt,
        buf.errcnt, buf.stbcnt, buf.tai,
    )  # fmt: skip


_TIME_ERROR = 5  # adjtimex's state when the clock is not synchronised
_STA_NANO = 0x2000  # status bit: offset and jitter in ns instead of µs
_PPM16 = 1_000_000.0 * 65536.0  # frequencies are ppm in 16.16 fixed point


class TimexPart:
    """node_exporter's timex collector (``node_timex_*``), from ``adjtimex(2)``.

    Args:
        adjtimex: returns a :class:`Timex` or None (no series); :func:`read_adjtimex` by default.
    """

    def __init__(self, adjtimex: Callable[[], Timex | None] = read_adjtimex) -> None:
        self._adjtimex = adjtimex

    def collect(self) -> list[Sample]:
        t = self._adjtimex()
        if t is None:
            return []
        fine = 1e9 if t.status & _STA_NANO else 1e6
        values = (
            ("node_timex_sync_status", 0.0 if t.state == _TIME_ERROR else 1.0, GAUGE),
            ("node_timex_offset_seconds", t.offset / fine, GAUGE),
            ("node_timex_frequency_adjustment_ratio", 1 + t.freq / _PPM16, GAUGE),
            ("node_timex_maxerror_seconds", t.maxerror / 1e6, GAUGE),
            ("node_timex_estimated_error_seconds", t.esterror / 1e6, GAUGE),
            ("node_timex_status", float(t.status), GAUGE),
            ("node_timex_loop_time_constant", float(t.constant), GAUGE),
            ("node_timex_tick_seconds", t.tick / 1e6, GAUGE),
            ("node_timex_pps_frequency_hertz", t.ppsfreq / _PPM16, GAUGE),
            ("node_timex_pps_jitter_seconds", t.jitter / fine, GAUGE),
            ("node_timex_pps_shift_seconds", float(t.shift), GAUGE),
            ("node_timex_pps_stability_hertz", t.stabil / _PPM16, GAUGE),
            ("node_timex_pps_jitter_total", float(t.jitcnt), COUNTER),
            ("node_timex_pps_calibration_total", float(t.calcnt), COUNTER),
            ("node_timex_pps_error_total", float(t.errcnt), COUNTER),
            ("node_timex_pps_stability_exceeded_total", float(t.stbcnt), COUNTER),
            ("node_timex_tai_offset_seconds", float(t.tai), GAUGE),
        )
        return [Sample(name, value, {}, kind) for name, value, kind in values]


class FilefdPart:
    """``node_filefd_allocated`` and ``node_filefd_maximum`` from ``/proc/sys/fs/file-nr``."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        try:
            allocated, _, maximum = self._files.read("/proc/sys/fs/file-nr").split()[:3]
        except (OSError, ValueError):
            return []
        return [
            Sample("node_filefd_allocated", float(allocated), {}, GAUGE),
            Sample("node_filefd_maximum", float(maximum), {}, GAUGE),
        ]


class EntropyPart:
    """``node_entropy_available_bits`` and ``node_entropy_pool_size_bits``."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        samples = []
        for name, path in (
            ("node_entropy_available_bits", "/proc/sys/kernel/random/entropy_avail"),
            ("node_entropy_pool_size_bits", "/proc/sys/kernel/random/poolsize"),
        ):
            try:
                samples.append(Sample(name, float(self._files.read(path)), {}, GAUGE))
            except (OSError, ValueError):
                continue
        return samples


class PressurePart:
    """PSI totals: ``node_pressure_{cpu,io,memory}_waiting_seconds_total`` and
    ``node_pressure_{io,memory}_stalled_seconds_total`` (``some`` and ``full``, µs to s).

    As node_exporter 1.5, cpu's ``full`` line is not reported.
    """

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        samples = []
        for resource in ("cpu", "io", "memory"):
            try:
                text = self._files.read(f"/proc/pressure/{resource}")
            except OSError:
                continue
            for line in text.splitlines():
                kind, _, rest = line.partition(" ")
                if kind == "some":
                    name = f"node_pressure_{resource}_waiting_seconds_total"
                elif kind == "full" and resource != "cpu":
                    name = f"node_pressure_{resource}_stalled_seconds_total"
                else:
                    continue
                total = rest.rpartition("total=")[2]
                samples.append(Sample(name, int(total) / 1e6, {}, COUNTER))
        return samples


class SelinuxPart:
    """``node_selinux_enabled``, and when enabled ``node_selinux_{config,current}_mode``.

    Modes: 1 enforcing, 0 permissive, -1 disabled (config only).
    """

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        try:
            enforce = self._files.read("/sys/fs/selinux/enforce").strip()
        except OSError:
            return [Sample("node_selinux_enabled", 0.0, {}, GAUGE)]
        samples = [
            Sample("node_selinux_enabled", 1.0, {}, GAUGE),
            Sample("node_selinux_current_mode", float(enforce == "1"), {}, GAUGE),
        ]
        try:
            config = parse_os_release(self._files.read("/etc/selinux/config"))
        except OSError:
            return samples
        mode = {"enforcing": 1.0, "permissive": 0.0}.get(config.get("SELINUX", ""), -1.0)
        samples.append(Sample("node_selinux_config_mode", mode, {}, GAUGE))
        return samples


class SchedstatPart:
    """Per-CPU scheduler time from ``/proc/schedstat``: running, waiting (ns to s), timeslices."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        try:
            text = self._files.read("/proc/schedstat")
        except OSError:
            return []
        samples = []
        for line in text.splitlines():
            if not line.startswith("cpu"):
                continue
            fields = line.split()
            if len(fields) < 10:
                continue
            labels = {"cpu": fields[0].removeprefix("cpu")}
            samples += [
                Sample(
                    "node_schedstat_running_seconds_total", int(fields[7]) / 1e9, labels, COUNTER
                ),
                Sample(
                    "node_schedstat_waiting_seconds_total", int(fields[8]) / 1e9, labels, COUNTER
                ),
                Sample("node_schedstat_timeslices_total", float(fields[9]), labels, COUNTER),
            ]
        return samples


# (series, file under /sys/devices/system/cpu/cpu<N>/cpufreq/); the kernel gives kHz.
_CPUFREQ_FILES = (
    ("node_cpu_frequency_hertz", "cpuinfo_cur_freq"),
    ("node_cpu_frequency_max_hertz", "cpuinfo_max_freq"),
    ("node_cpu_frequency_min_hertz", "cpuinfo_min_freq"),
    ("node_cpu_scaling_frequency_hertz", "scaling_cur_freq"),
    ("node_cpu_scaling_frequency_max_hertz", "scaling_max_freq"),
    ("node_cpu_scaling_frequency_min_hertz", "scaling_min_freq"),
)


class CpufreqPart:
    """node_exporter's cpufreq collector: per-CPU frequencies in Hz, where the kernel has cpufreq.

    ``cpuinfo_cur_freq`` is readable by root only; as node_exporter, a file that
    cannot be read is left out.
    """

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        base = "/sys/devices/system/cpu"
        try:
            cpus = [c for c in self._files.listdir(base) if c[3:].isdigit() and c[:3] == "cpu"]
        except OSError:
            return []
        samples = []
        for cpu in sorted(cpus, key=lambda c: int(c[3:])):
            if not self._files.exists(f"{base}/{cpu}/cpufreq"):
                continue  # no cpufreq driver (most virtual machines): one stat, not six reads
            labels = {"cpu": cpu[3:]}
            for name, file in _CPUFREQ_FILES:
                try:
                    khz = int(self._files.read(f"{base}/{cpu}/cpufreq/{file}"))
                except (OSError, ValueError):
                    continue
                samples.append(Sample(name, khz * 1000.0, labels, GAUGE))
        return samples

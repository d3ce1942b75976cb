"""What one simulated host is: its size, devices, role and habits, drawn from (seed, index).

Hosts differ the way a real fleet does: 2 to 64 cores, 2 to 8 GiB of memory
per core, NVMe, virtio or SATA disks with one or two filesystems, one to
three network interfaces, a role that shapes when and how hard the host works,
and a region whose time zone moves its daily peak.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hoststream.producers.simulation.activity import ActivityParams
from hoststream.producers.simulation.hashing import derive, unit

__all__ = [
    "BlockDevice",
    "Filesystem",
    "HostProfile",
    "NetworkInterface",
    "host_id",
    "host_key",
    "make_profile",
]

GIB = 1 << 30

_CORES = ((2, 0.12), (4, 0.24), (8, 0.26), (16, 0.18), (32, 0.1), (48, 0.05), (64, 0.05))
_REGIONS = (("eu-west-1", 1.0), ("us-east-1", -5.0), ("ap-southeast-1", 8.0))
# role: (weight, GiB per core choices, base range, local peak hour range, episode probability)
_ROLES: dict[
    str, tuple[float, tuple[int, ...], tuple[float, float], tuple[float, float], float]
] = {
    "web": (0.35, (2, 4), (0.08, 0.3), (13.0, 16.0), 0.05),
    "db": (0.15, (4, 8), (0.12, 0.35), (10.0, 15.0), 0.04),
    "cache": (0.1, (8,), (0.03, 0.15), (13.0, 17.0), 0.03),
    "kafka": (0.1, (4, 8), (0.08, 0.25), (12.0, 16.0), 0.04),
    "batch": (0.15, (2, 4), (0.1, 0.35), (1.0, 4.0), 0.12),
    "ci": (0.15, (2, 4), (0.05, 0.25), (10.0, 17.0), 0.15),
}
# platform: (weight, disk name prefix, root partition suffix, interfaces, latency ms range)
_PLATFORMS = {
    "nitro": (0.5, "nvme", "p1", ("ens5",), (0.1, 0.4)),
    "virtio": (0.3, "vd", "1", ("eth0",), (0.4, 2.0)),
    "metal": (0.2, "sd", "2", ("eno1", "eno2", "bond0"), (0.2, 6.0)),
}


_T = TypeVar("_T")


def _pick(u: float, weighted: tuple[tuple[_T, float], ...]) -> _T:
    for value, weight in weighted:
        u -= weight
        if u < 0:
            return value
    return weighted[-1][0]


def _between(u: float, bounds: tuple[float, float]) -> float:
    return bounds[0] + u * (bounds[1] - bounds[0])


@dataclass(frozen=True, slots=True)
class Filesystem:
    device: str
    fstype: str
    mountpoint: str
    size_bytes: int
    inodes: int
    #: Blocks only root may use (ext4's 5 %), so ``avail`` stays below ``free``.
    reserved_bytes: int
    #: The used fraction climbs from ``fill_low`` to ``fill_high`` over
    #: ``fill_period_s``, then drops back (log rotation, clean-up), as a sawtooth.
    fill_low: float
    fill_high: float
    fill_period_s: float
    fill_phase: float


@dataclass(frozen=True, slots=True)
class BlockDevice:
    name: str
    read_bytes_per_s: float
    write_bytes_per_s: float
    read_size: float
    write_size: float
    latency_s: float
    #: Fraction of the time the device is busy, at the host's mean activity.
    utilisation: float


@dataclass(frozen=True, slots=True)
class NetworkInterface:
    name: str
    receive_bytes_per_s: float
    transmit_bytes_per_s: float
    packet_size: float
    #: Errors and drops per second (rare).
    error_rate: float
    drop_rate: float


@dataclass(frozen=True, slots=True)
class HostProfile:
    index: int
    host_id: str
    key: int
    role: str
    region: str
    platform: str
    cores: int
    memory_bytes: int
    swap_bytes: int
    #: Memory the applications hold at the mean activity, as a fraction of memory.
    app_memory: float
    #: Growth of application memory per day of uptime (a leak); 0 for most hosts.
    leak_per_day: float
    page_cache: float
    #: Per-core share of the host's busy time, around 1.
    core_weights: tuple[float, ...]
    #: Split of busy time between user, nice, system, irq, softirq, steal (sums to 1).
    busy_split: tuple[float, float, float, float, float, float]
    #: iowait as a fraction of busy time.
    iowait_ratio: float
    filesystems: tuple[Filesystem, ...]
    block_devices: tuple[BlockDevice, ...]
    interfaces: tuple[NetworkInterface, ...]
    context_switches_per_core_s: float
    interrupts_per_core_s: float
    forks_per_s: float
    sleeping_processes: int
    activity: ActivityParams

    @property
    def labels(self) -> dict[str, str]:
        """Static host labels, as ``HOSTSTREAM_HOST_LABELS`` gives a real host."""
        return {"simulated": "true", "role": self.role, "region": self.region}


def host_id(seed: int, index: int) -> str:
    """The id of simulated host ``index`` of the fleet with ``seed``: ``sim-s<seed>-h<index>``."""
    return f"sim-s{seed}-h{index:05d}"


def host_key(seed: int, index: int) -> int:
    """The 64-bit key all of a simulated host's random values derive from."""
    return derive(0x5EED_0F_F1EE7, seed, index)


def make_profile(seed: int, index: int) -> HostProfile:
    """Draw host ``index`` of the fleet with ``seed``; the same arguments give the same host."""
    key = host_key(seed, index)
    draws = derive(key, 100)
    n = 0

    def u() -> float:
        nonlocal n
        n += 1
        return unit(draws, n)

    role = _pick(u(), tuple((r, spec[0]) for r, spec in _ROLES.items()))
    _, gib_choices, base_range, peak_range, episode_p = _ROLES[role]
    region, tz = _REGIONS[int(u() * len(_REGIONS))]
    platform = _pick(u(), tuple((p, spec[0]) for p, spec in _PLATFORMS.items()))
    _, disk_prefix, root_suffix, nic_names, latency_range = _PLATFORMS[platform]
    cores = _pick(u(), _CORES)
    gib_per_core = gib_choices[int(u() * len(gib_choices))]
    # The kernel keeps some memory for itself: MemTotal is a little under the RAM size.
    memory = int(cores * gib_per_core * GIB * (0.96 + 0.02 * u())) // 4096 * 4096
    swap = 0 if platform != "metal" or u() < 0.5 else min(8 * GIB, memory // 4)

    def disk_name(i: int) -> str:
        if disk_prefix == "nvme":
            return f"nvme{i}n1"
        return f"{disk_prefix}{'abcdefgh'[i]}"

    def partition(disk: str) -> str:
        return f"/dev/{disk}{root_suffix}"

    heavy_io = role in ("db", "kafka", "batch")
    disks = [disk_name(0)] + ([disk_name(1)] if heavy_io or u() < 0.2 else [])
    root_size = int(_between(u(), (20, 200))) * GIB
    filesystems = [
        _filesystem(u, partition(disks[0]), "ext4", "/", size=root_size, reserved=0.05),
        _filesystem(u, "tmpfs", "tmpfs", "/run", size=memory // 10 // 4096 * 4096, reserved=0.0),
    ]
    if len(disks) > 1:
        data_size = int(_between(u(), (100, 4000))) * GIB
        mount = {"db": "/var/lib/postgresql", "kafka": "/var/lib/kafka"}.get(role, "/data")
        filesystems.append(
            _filesystem(u, f"/dev/{disks[1]}", "xfs", mount, size=data_size, reserved=0.0)
        )

    latency = _between(u(), latency_range) / 1000.0
    io_scale = 8.0 if heavy_io else 1.0
    block_devices = tuple(
        BlockDevice(
            name=disk,
            read_bytes_per_s=io_scale * _between(u(), (2e4, 4e6)) / (i + 1),
            write_bytes_per_s=io_scale * _between(u(), (5e4, 6e6)) / (i + 1),
            read_size=_between(u(), (8192, 131072)),
            write_size=_between(u(), (4096, 65536)),
            latency_s=latency,
            utilisation=_between(u(), (0.005, 0.25 if heavy_io else 0.06)),
        )
        for i, disk in enumerate(disks)
    )

    net_scale = 10.0 if role in ("kafka", "web", "cache") else 1.0
    interfaces = [_interface(u, "lo", _between(u(), (1e3, 5e4)), 0.0)]
    if platform == "metal":
        # Two ports bonded: bond0 carries the sum of eno1 and eno2.
        ports = [
            _interface(u, name, net_scale * _between(u(), (5e4, 5e6)), 1e-3)
            for name in nic_names[:2]
        ]
        interfaces += ports
        interfaces.append(
            NetworkInterface(
                "bond0",
                sum(p.receive_bytes_per_s for p in ports),
                sum(p.transmit_bytes_per_s for p in ports),
                ports[0].packet_size,
                sum(p.error_rate for p in ports),
                sum(p.drop_rate for p in ports),
            )
        )
    else:
        interfaces.append(_interface(u, nic_names[0], net_scale * _between(u(), (5e4, 1e7)), 1e-3))

    weights = tuple(0.95 + 0.1 * u() for _ in range(cores))
    user, nice, irq, softirq = 0.55 + 0.2 * u(), 0.02 * u(), 0.01 * u(), 0.01 + 0.04 * u()
    steal = 0.0 if platform == "metal" else 0.03 * u()
    system = 1.0 - user - nice - irq - softirq - steal
    leak = _between(u(), (0.05, 0.3)) if u() < 0.08 else 0.0
    flaky = u() < 0.03
    reboot_period = _between(u(), (2, 8)) * 3600 if flaky else _between(u(), (3, 21)) * 86_400
    peak_local = _between(u(), peak_range)
    activity = ActivityParams(
        base=_between(u(), base_range),
        amplitude=_between(u(), (0.3, 0.7)),
        peak_hour_utc=(peak_local - tz) % 24.0,
        episode_probability=episode_p,
        reboot_period_s=reboot_period,
    )
    return HostProfile(
        index=index,
        host_id=host_id(seed, index),
        key=key,
        role=role,
        region=region,
        platform=platform,
        cores=cores,
        memory_bytes=memory,
        swap_bytes=swap,
        app_memory=_between(u(), (0.12, 0.45)),
        leak_per_day=leak,
        page_cache=_between(u(), (0.1, 0.4)),
        core_weights=weights,
        busy_split=(user, nice, system, irq, softirq, steal),
        iowait_ratio=_between(u(), (0.002, 0.03 if heavy_io else 0.015)),
        filesystems=tuple(filesystems),
        block_devices=block_devices,
        interfaces=tuple(interfaces),
        context_switches_per_core_s=_between(u(), (800, 4000)),
        interrupts_per_core_s=_between(u(), (300, 1500)),
        forks_per_s=_between(u(), (0.5, 30)),
        sleeping_processes=int(60 + 4 * cores + _between(u(), (20, 400))),
        activity=activity,
    )


def _filesystem(
    draw: Callable[[], float],
    device: str,
    fstype: str,
    mountpoint: str,
    *,
    size: int,
    reserved: float,
) -> Filesystem:
    if fstype == "tmpfs":
        # /run holds pid files and sockets: a sliver of its size.
        low = 0.001 + 0.01 * draw()
        high = low + 0.01 * draw()
    else:
        low = 0.05 + 0.5 * draw()
        high = min(0.98, low + 0.05 + 0.45 * draw())
    return Filesystem(
        device=device,
        fstype=fstype,
        mountpoint=mountpoint,
        size_bytes=size,
        # ext4's default: one inode per 16 KiB; tmpfs and xfs allocate them as needed.
        inodes=size // 16384 if fstype == "ext4" else size // 4096,
        reserved_bytes=int(size * reserved) // 4096 * 4096,
        fill_low=low,
        fill_high=high,
        # Some fill in hours (and trip "disk will fill" alerts), most in weeks.
        fill_period_s=(
            _between(draw(), (2, 12)) * 3600 if draw() < 0.1 else _between(draw(), (2, 60)) * 86_400
        ),
        fill_phase=draw(),
    )


def _interface(
    draw: Callable[[], float], name: str, rate: float, error_rate: float
) -> NetworkInterface:
    return NetworkInterface(
        name=name,
        receive_bytes_per_s=rate,
        transmit_bytes_per_s=rate * _between(draw(), (0.3, 1.5)),
        packet_size=_between(draw(), (200, 1400)),
        error_rate=error_rate * draw(),
        drop_rate=error_rate * 3 * draw(),
    )

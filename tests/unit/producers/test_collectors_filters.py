"""Which filesystems, block devices and interfaces are reported: defaults and overrides."""

from __future__ import annotations

import pytest

from hoststream.errors import ConfigurationError
from hoststream.producers.collectors import (
    DEFAULT_DISK_DEVICE_EXCLUDE,
    DiskCollector,
    NameFilter,
    NetworkCollector,
)
from hoststream.schemas.records import Sample


def mounts(samples: list[Sample]) -> list[tuple[str, str, str]]:
    return [
        (s.labels["device"], s.labels["fstype"], s.labels["mountpoint"])
        for s in samples
        if s.name == "node_filesystem_device_error"
    ]


def test_default_filesystem_filters_follow_node_exporter(edge):
    samples = DiskCollector(edge).collect_filesystems()

    assert mounts(samples) == [
        ("/dev/nvme0n1p2", "ext4", "/"),  # listed twice, reported once
        ("/dev/nvme0n1p1", "vfat", "/boot/efi"),
        ("/dev/sdb1", "xfs", "/srv/data dir"),
        ("/dev/nvme0n1p2", "ext4", "/var/lib/kubelet"),  # bind mount: another mount point
        ("server:/export", "nfs4", "/mnt/nfs"),
        ("tmpfs", "tmpfs", "/run"),  # only /run/credentials/... is excluded upstream
        ("tmpfs", "tmpfs", "/tmp"),
    ]
    # Left out: /run/credentials/..., docker's overlay (mount point) and any
    # other overlay (type), proc, sysfs, cgroup2, devtmpfs, devpts, /dev/shm,
    # tracefs, squashfs and autofs.


def test_failed_statvfs_reports_device_error_and_no_sizes(edge):
    samples = DiskCollector(edge).collect_filesystems()

    nfs = [s for s in samples if s.labels["mountpoint"] == "/mnt/nfs"]
    assert [(s.name, s.value) for s in nfs] == [("node_filesystem_device_error", 1.0)]


def test_read_only_mount_and_escaped_mount_point(edge):
    samples = DiskCollector(edge).collect_filesystems()

    data = {s.name: s.value for s in samples if s.labels["mountpoint"] == "/srv/data dir"}
    assert data["node_filesystem_readonly"] == 1.0
    assert data["node_filesystem_size_bytes"] == 976_000_000 * 4096
    assert data["node_filesystem_avail_bytes"] == 500_000_000 * 4096


def test_filesystem_filters_can_be_changed_or_turned_off(edge):
    # The regex replaces the default: /dev is no longer excluded, so the tmpfs
    # on /dev/shm (devtmpfs and devpts are still excluded by type) comes back.
    custom = DiskCollector(edge, mount_points_exclude=r"^/(tmp|run|mnt|boot|srv|var)($|/)")
    assert [m[2] for m in mounts(custom.collect_filesystems())] == ["/", "/dev/shm"]

    everything = DiskCollector(edge, mount_points_exclude=None, fs_types_exclude=None)
    reported = mounts(everything.collect_filesystems())
    assert len(reported) == len(edge.snapshot["disk_partitions"]) - 1  # the duplicate of /
    assert ("proc", "proc", "/proc") in reported


def test_default_device_filter_keeps_whole_disks_only(edge):
    devices = sorted({s.labels["device"] for s in DiskCollector(edge).collect_devices()})

    # node_exporter's default leaves out partitions of sd/vd/xvd/hd/nvme disks,
    # loop and RAM disks and floppies; device mapper, md, optical, zram and
    # mmcblk partitions (which its regex does not name) stay.
    assert devices == [
        "dm-0", "md0", "mmcblk0", "mmcblk0p1", "nvme0n1", "nvme1n1", "sda", "sdb",
        "sr0", "vda", "xvda", "zram0",
    ]  # fmt: skip


def test_device_include_replaces_the_exclude(edge):
    collector = DiskCollector(edge, device_exclude=None, device_include=r"^nvme\d+n\d+$")

    assert sorted({s.labels["device"] for s in collector.collect_devices()}) == [
        "nvme0n1",
        "nvme1n1",
    ]


def test_include_and_exclude_together_are_refused(edge):
    with pytest.raises(ConfigurationError, match="device_include: cannot be combined"):
        DiskCollector(edge, device_include="^sda$")  # the default exclude is still set
    with pytest.raises(ConfigurationError, match="device_include"):
        NetworkCollector(edge, device_exclude="^lo$", device_include="^eth")


def test_bad_regex_names_the_parameter(edge):
    with pytest.raises(ConfigurationError, match=r"fs_types_exclude: '\(' is not a valid"):
        DiskCollector(edge, fs_types_exclude="(")


def test_network_keeps_every_interface_by_default(edge):
    devices = sorted({s.labels["device"] for s in NetworkCollector(edge).collect()})

    assert devices == ["bond0", "docker0", "eth0", "lo", "veth12ab"]


def test_network_exclude_and_include(edge):
    no_virtual = NetworkCollector(edge, device_exclude=r"^(lo|docker\d+|veth.*)$")
    assert {s.labels["device"] for s in no_virtual.collect()} == {"eth0", "bond0"}

    only_bond = NetworkCollector(edge, device_include=r"^bond")
    assert {s.labels["device"] for s in only_bond.collect()} == {"bond0"}


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("sda", True),
        ("sda1", False),
        ("nvme0n1", True),
        ("nvme0n1p1", False),
        ("nvme10n1p12", False),
        ("xvdb3", False),
        ("loop0", False),
        ("ram15", False),
        ("fd0", False),
        ("dm-3", True),
        ("sdaa1", True),  # the default names single-letter disks only, as upstream's
    ],
)
def test_default_disk_device_exclude(name, kept):
    assert NameFilter(DEFAULT_DISK_DEVICE_EXCLUDE)(name) is kept


def test_name_filter_matches_anywhere_like_go():
    # Go's MatchString is unanchored, so is this filter.
    assert NameFilter(exclude="eth")("veth0") is False
    assert NameFilter(include="eth")("veth0") is True
    assert NameFilter()("anything") is True

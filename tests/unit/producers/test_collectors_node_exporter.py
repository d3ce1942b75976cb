"""Our samples beside node_exporter 1.5.0's, scraped on the same host within a second.

``debian12_vm_2cpu.node_exporter-1.5.0.prom`` is Debian's prometheus-node-exporter
1.5.0 (run with ``--collector.processes``), limited to the series hoststream
sends; ``debian12_vm_2cpu.json`` was recorded right after it.
"""

from __future__ import annotations

import re

import pytest

from hoststream.producers.collectors import default_collectors
from hoststream.producers.collectors.names import MEMINFO_FIELDS
from hoststream.schemas.records import MetricKind
from tests.support.paths import DATA

_LINE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

# Debian patches two of node_exporter's defaults; with these, our collectors
# select what the Debian build scraped.
DEBIAN_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
DEBIAN_NETDEV_EXCLUDE = "^lo$"

# Series the recorded scrape does not hold: node_exporter reports only the
# process states it saw, and the scrape was cut down to the series hoststream
# sent then, which did not include guest time.
UNRECORDED = ("node_processes_state", "node_cpu_guest_seconds_total")

# Values that move between two reads a second apart.
MOVING = (
    "node_cpu_seconds_total",
    "node_disk_",
    "node_network_",
    "node_context_switches_total",
    "node_intr_total",
    "node_forks_total",
    "node_load",
    "node_memory_MemFree",
    "node_memory_MemAvailable",
    "node_memory_Cached",
    "node_memory_Buffers",
    "node_memory_SReclaimable",
    "node_memory_Shmem",
    "node_filesystem_free",
    "node_filesystem_avail",
    "node_filesystem_files_free",
    "node_procs_",
    "node_processes_state",
)


def parse_exposition(
    text: str,
) -> tuple[dict[str, str], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    types: dict[str, str] = {}
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            continue
        match = _LINE.match(line)
        if match:
            name, labels, value = match.groups()
            key = (name, tuple(sorted(_LABEL.findall(labels or ""))))
            values[key] = float(value)
    return types, values


@pytest.fixture
def node_exporter():
    return parse_exposition(
        (DATA / "debian12_vm_2cpu.node_exporter-1.5.0.prom").read_text(encoding="utf-8")
    )


@pytest.fixture
def ours(vm):
    # The recorded scrape was cut down to the meminfo fields hoststream sent then.
    collectors = default_collectors(
        vm,
        mount_points_exclude=DEBIAN_MOUNT_POINTS_EXCLUDE,
        network_device_exclude=DEBIAN_NETDEV_EXCLUDE,
        meminfo_fields=MEMINFO_FIELDS,
    )
    return [s for c in collectors for s in c.collect()]


def test_same_series_names_and_labels(ours, node_exporter):
    _, theirs = node_exporter
    mine = {(s.name, tuple(sorted(s.labels.items()))) for s in ours}

    # node_exporter reports only the process states it saw; we always report
    # R, S, D, Z, T and I.
    extra = {k for k in mine - theirs.keys() if k[0] not in UNRECORDED}
    assert extra == set()
    assert theirs.keys() - mine == set()


def test_same_kinds(ours, node_exporter):
    types, _ = node_exporter
    expected = {"counter": MetricKind.COUNTER, "gauge": MetricKind.GAUGE}

    for sample in ours:
        if sample.name in types:  # the recorded scrape has no guest time
            assert sample.kind is expected[types[sample.name]], sample.name


def test_same_values_and_units(ours, node_exporter):
    _, theirs = node_exporter
    for sample in ours:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        if key not in theirs:
            continue
        expected = theirs[key]
        if sample.name.startswith(MOVING):
            # Same unit and magnitude: a second apart, within 5 % (or a small absolute step).
            assert sample.value == pytest.approx(expected, rel=0.05, abs=2), key
        else:
            assert sample.value == expected, key

"""The real-host collectors beside Debian's prometheus-node-exporter 1.5.0 on this machine.

node_exporter runs on a free loopback port (never as the Debian service), with
upstream 1.5's defaults where Debian patches them, and is scraped between two
collections of hoststream's collectors (the wiring `hoststream produce` uses).
Then:

- coverage: at least 95 % of node_exporter's series (name and label set) are
  sent, leaving out only the deliberate exceptions of docs/metrics.md;
- kinds: node_exporter's counters are COUNTER and its gauges GAUGE;
- instantaneous gauges (totals, sizes, identities) are equal;
- each counter of node_exporter lies between hoststream's reads just before
  and just after the scrape, so they agree within what elapsed between them.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from hoststream.config import Settings
from hoststream.producers.agent import collectors_for
from hoststream.producers.collectors import DEFAULT_MOUNT_POINTS_EXCLUDE
from hoststream.schemas.records import MetricKind, Sample

Key = tuple[str, tuple[tuple[str, str], ...]]

_LINE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

#: Deliberate exceptions (docs/metrics.md, "Differences from node_exporter"):
#: the exporter's own series, not a host's.
EXPORTER_OWN = re.compile(
    r"^(node_scrape_collector_.*|node_exporter_build_info|node_textfile_scrape_error)$"
)

#: Gauges that do not move between two reads a few ms apart: totals, sizes, identities.
INSTANTANEOUS = re.compile(
    r"^node_("
    r"memory_(MemTotal|SwapTotal|Hugepagesize|HugePages_Total|VmallocTotal|CommitLimit"
    r"|DirectMap\w+)_bytes|memory_HugePages_Total"
    r"|filesystem_(size_bytes|files|readonly|device_error)"
    r"|network_(mtu_bytes|speed_bytes|iface_id|iface_link|protocol_type|address_assign_type"
    r"|name_assign_type|device_id|net_dev_group|flags|up|info|transmit_queue_length|carrier)"
    r"|disk_info|uname_info|os_info|os_version|boot_time_seconds|time_zone_offset_seconds"
    r"|time_clocksource_\w+_info|filefd_maximum|entropy_pool_size_bits|nf_conntrack_entries_limit"
    r"|selinux_enabled|timex_(status|tick_seconds|loop_time_constant|tai_offset_seconds"
    r"|sync_status)"
    r")$"
)

#: Series node_exporter reads another way, where a counter may sit a hair
#: outside our two reads (floating point of a different unit conversion).
FLOAT_SLACK = 1e-9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse(text: str) -> tuple[dict[str, str], dict[Key, float]]:
    types: dict[str, str] = {}
    values: dict[Key, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            continue
        match = _LINE.match(line)
        if match:
            name, labels, value = match.groups()
            # An empty label is no label, in Prometheus as in VictoriaMetrics.
            pairs = tuple(sorted((k, v) for k, v in _LABEL.findall(labels or "") if v))
            values[(name, pairs)] = float(value)
    return types, values


def keyed(samples: list[Sample]) -> dict[Key, Sample]:
    return {(s.name, tuple(sorted(s.labels.items()))): s for s in samples}


@pytest.fixture(scope="module")
def node_exporter() -> Iterator[str]:
    binary = shutil.which("prometheus-node-exporter")
    assert binary, "prometheus-node-exporter is missing: deploy/local/install.sh installs it"
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=error",
            # Upstream 1.5's defaults, where Debian's package patches them.
            f"--collector.filesystem.mount-points-exclude={DEFAULT_MOUNT_POINTS_EXCLUDE}",
            "--collector.netdev.device-exclude=",
            "--no-collector.systemd",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            try:
                httpx.get(url, timeout=5).raise_for_status()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def reads(node_exporter: str):
    collectors = collectors_for(Settings())
    for c in collectors:
        c.collect()  # warm: first reads resolve caches
    before = keyed([s for c in collectors for s in c.collect()])
    text = httpx.get(node_exporter, timeout=10).text
    after = keyed([s for c in collectors for s in c.collect()])
    types, theirs = parse(text)
    host = {k: v for k, v in theirs.items() if k[0].startswith("node_")}
    return types, host, before, after


def test_node_exporter_1_5_0_is_the_peer() -> None:
    binary = shutil.which("prometheus-node-exporter")
    assert binary
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert "version 1.5.0" in version.stdout + version.stderr


def test_covers_at_least_95_percent_of_node_exporters_series(reads) -> None:
    _, theirs, before, after = reads
    expected = {k for k in theirs if not EXPORTER_OWN.match(k[0])}
    ours = before.keys() & after.keys()
    missing = sorted(expected - ours)
    coverage = 1 - len(missing) / len(expected)
    assert coverage >= 0.95, f"{coverage:.1%} of {len(expected)}; missing: {missing}"


def test_same_kinds(reads) -> None:
    types, theirs, before, _ = reads
    expected = {"counter": MetricKind.COUNTER, "gauge": MetricKind.GAUGE}
    wrong = [
        (name, types[name], before[(name, labels)].kind)
        for name, labels in theirs
        if (name, labels) in before and types.get(name) in expected
        if before[(name, labels)].kind is not expected[types[name]]
    ]
    assert wrong == []


def test_instantaneous_gauges_are_equal(reads) -> None:
    _, theirs, before, after = reads
    compared = [k for k in theirs if INSTANTANEOUS.match(k[0]) and k in before and k in after]
    assert len(compared) > 30
    differ = [
        (k, theirs[k], before[k].value)
        for k in compared
        if before[k].value == after[k].value and before[k].value != pytest.approx(theirs[k])
    ]
    assert differ == []


def test_counters_lie_between_our_reads_before_and_after_the_scrape(reads) -> None:
    types, theirs, before, after = reads
    compared = [k for k in theirs if types.get(k[0]) == "counter" and k in before and k in after]
    assert len(compared) > 100
    outside = [
        (k, before[k].value, theirs[k], after[k].value)
        for k in compared
        if not (
            before[k].value * (1 - FLOAT_SLACK) - FLOAT_SLACK
            <= theirs[k]
            <= after[k].value * (1 + FLOAT_SLACK) + FLOAT_SLACK
        )
    ]
    assert outside == []

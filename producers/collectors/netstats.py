"""node_exporter's network collectors beyond traffic totals: netdev (every field),
netclass, netstat, sockstat, softnet, arp, udp_queues and conntrack.

Each part reads a :class:`~hoststream.producers.collectors.files.FileSource`
and returns ``[]`` where the host lacks the file, as node_exporter leaves the
series out. node_exporter reports netstat's fields untyped; here the gauges
among them (``Tcp_CurrEstab``, ``Ip_Forwarding``) are sent as gauges and the
rest as counters, so consumers compute rates of the counters.
"""

from __future__ import annotations

import re

from hoststream.producers.collectors.base import NameFilter
from hoststream.producers.collectors.files import FileSource
from hoststream.producers.collectors.kernel import info_labels
from hoststream.schemas.records import MetricKind, Sample

__all__ = [
    "DEFAULT_NETSTAT_FIELDS",
    "ArpPart",
    "ConntrackPart",
    "NetClassPart",
    "NetDevPart",
    "NetstatPart",
    "SockstatPart",
    "SoftnetPart",
    "UdpQueuesPart",
]

GAUGE = MetricKind.GAUGE
COUNTER = MetricKind.COUNTER

# /proc/net/dev's columns, in order, under node_exporter's names.
_NETDEV_COLUMNS = tuple(
    f"node_network_{name}_total"
    for name in (
        "receive_bytes", "receive_packets", "receive_errs", "receive_drop",
        "receive_fifo", "receive_frame", "receive_compressed", "receive_multicast",
        "transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop",
        "transmit_fifo", "transmit_colls", "transmit_carrier", "transmit_compressed",
    )
)  # fmt: skip


class NetDevPart:
    """Every ``node_network_{receive,transmit}_*_total{device}`` counter node_exporter sends.

    Args:
        files: for ``/proc/net/dev`` and ``/sys/class/net/<device>/statistics/rx_nohandler``.
        device_exclude, device_include: node_exporter's netdev filters (regex).

    /proc/net/dev folds a few error kinds into ``frame``, ``drop`` and
    ``carrier`` that node_exporter 1.5 (over netlink) reports apart; the totals
    of bytes, packets, errors and multicast are the same.
    """

    def __init__(
        self,
        files: FileSource,
        *,
        device_exclude: str | None = None,
        device_include: str | None = None,
    ) -> None:
        self._files = files
        self._devices = NameFilter(
            device_exclude,
            device_include,
            exclude_parameter="network_device_exclude",
            include_parameter="network_device_include",
        )
        self._labels: dict[str, dict[str, str]] = {}

    def collect(self) -> list[Sample]:
        try:
            text = self._files.read("/proc/net/dev")
        except OSError:
            return []
        samples: list[Sample] = []
        for line in text.splitlines()[2:]:
            device, sep, rest = line.partition(":")
            device = device.strip()
            if not sep or not self._devices(device):
                continue
            labels = self._labels.get(device)
            if labels is None:
                labels = self._labels[device] = {"device": device}
            samples += [
                Sample(name, float(value), labels, COUNTER)
                for name, value in zip(_NETDEV_COLUMNS, rest.split(), strict=False)
            ]
            try:
                nohandler = self._files.read(f"/sys/class/net/{device}/statistics/rx_nohandler")
                samples.append(
                    Sample(
                        "node_network_receive_nohandler_total", float(nohandler), labels, COUNTER
                    )
                )
            except (OSError, ValueError):
                pass
        return samples


# (series, /sys/class/net/<device>/<file>, kind); read as integers (decimal or 0x hex).
_NETCLASS_INDEX = (("node_network_iface_id", "ifindex", GAUGE),)
#: Fixed while the interface exists.
_NETCLASS_FIXED = (
    ("node_network_address_assign_type", "addr_assign_type", GAUGE),
    ("node_network_device_id", "dev_id", GAUGE),
    ("node_network_name_assign_type", "name_assign_type", GAUGE),
    ("node_network_protocol_type", "type", GAUGE),
)
_NETCLASS_VALUES = (
    ("node_network_carrier", "carrier", GAUGE),
    ("node_network_carrier_changes_total", "carrier_changes", COUNTER),
    ("node_network_carrier_up_changes_total", "carrier_up_count", COUNTER),
    ("node_network_carrier_down_changes_total", "carrier_down_count", COUNTER),
    ("node_network_dormant", "dormant", GAUGE),
    ("node_network_flags", "flags", GAUGE),
    ("node_network_iface_link", "iflink", GAUGE),
    ("node_network_iface_link_mode", "link_mode", GAUGE),
    ("node_network_mtu_bytes", "mtu", GAUGE),
    ("node_network_net_dev_group", "netdev_group", GAUGE),
    ("node_network_speed_bytes", "speed", GAUGE),
    ("node_network_transmit_queue_length", "tx_queue_len", GAUGE),
)


class NetClassPart:
    """node_exporter's netclass collector: each interface's properties from /sys/class/net.

    ``node_network_info{device, address, broadcast, duplex, operstate, ifalias}``,
    ``node_network_up`` (operstate is ``up``), and one gauge per property
    (speed in bytes/s, MTU, carrier, flags, ...). A property the kernel refuses
    to report (the carrier of a down interface) is left out, as node_exporter does.

    Args:
        files: for ``/sys/class/net``.
        device_exclude: regex of interfaces to leave out (node_exporter's
            ``--collector.netclass.ignored-devices``; none by default).
    """

    def __init__(self, files: FileSource, *, device_exclude: str | None = None) -> None:
        self._files = files
        self._devices = NameFilter(device_exclude, exclude_parameter="netclass_device_exclude")
        # Properties fixed for an interface's life, by device: read again only
        # when the device's ifindex changes (it was deleted and made anew).
        self._fixed: dict[str, tuple[int, list[Sample]]] = {}

    def _text(self, base: str, name: str) -> str | None:
        try:
            return self._files.read(f"{base}/{name}").strip()
        except OSError:
            return None

    def _values(
        self, base: str, labels: dict[str, str], wanted: tuple[tuple[str, str, MetricKind], ...]
    ) -> list[Sample]:
        samples = []
        for name, attr, kind in wanted:
            raw = self._text(base, attr)
            if not raw:
                continue
            try:
                value = int(raw, 0)
            except ValueError:
                continue
            if attr == "speed":
                value = value * 1_000_000 // 8  # Mbit/s to bytes/s
            samples.append(Sample(name, float(value), labels, kind))
        return samples

    def collect(self) -> list[Sample]:
        try:
            devices = self._files.listdir("/sys/class/net")
        except OSError:
            return []
        samples: list[Sample] = []
        for device in devices:
            if not self._devices(device):
                continue
            base = f"/sys/class/net/{device}"
            operstate = self._text(base, "operstate")
            if operstate is None:  # not an interface directory (bonding_masters)
                continue
            labels = {"device": device}
            samples.append(Sample("node_network_up", float(operstate == "up"), labels, GAUGE))
            info = {
                "device": device,
                "address": self._text(base, "address") or "",
                "broadcast": self._text(base, "broadcast") or "",
                "duplex": self._text(base, "duplex") or "",
                "operstate": operstate,
                "ifalias": self._text(base, "ifalias") or "",
            }
            samples.append(Sample("node_network_info", 1.0, info_labels(info), GAUGE))
            indexed = self._values(base, labels, _NETCLASS_INDEX)
            index = indexed[0] if indexed else None
            cached = self._fixed.get(device)
            if index is None or cached is None or cached[0] != index.value:
                fixed = self._values(base, labels, _NETCLASS_FIXED)
                if index is not None:
                    self._fixed[device] = (int(index.value), fixed)
            else:
                fixed = cached[1]
            if index is not None:
                samples.append(index)
            samples += fixed
            samples += self._values(base, labels, _NETCLASS_VALUES)
        for gone in self._fixed.keys() - set(devices):
            del self._fixed[gone]
        return samples


#: node_exporter 1.5's ``--collector.netstat.fields`` default.
DEFAULT_NETSTAT_FIELDS = (
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)"
    r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)
_NETSTAT_GAUGES = frozenset({"Tcp_CurrEstab", "Ip_Forwarding"})


class NetstatPart:
    """``node_netstat_<Protocol>_<Field>`` from /proc/net/netstat, snmp and snmp6.

    Args:
        files: for ``/proc/net/{netstat,snmp,snmp6}``.
        fields: regex of ``<Protocol>_<Field>`` names to send (node_exporter's default).
    """

    def __init__(self, files: FileSource, fields: str = DEFAULT_NETSTAT_FIELDS) -> None:
        self._files = files
        self._fields = re.compile(fields)
        # Per header line: the positions of the wanted fields in its value line,
        # with their series and kind. The kernel's headers do not change while it runs.
        self._columns: dict[str, list[tuple[int, str, MetricKind]]] = {}
        self._snmp6: dict[str, tuple[str, MetricKind] | None] = {}

    def _series(self, key: str) -> tuple[str, MetricKind] | None:
        if not self._fields.search(key):
            return None
        return f"node_netstat_{key}", GAUGE if key in _NETSTAT_GAUGES else COUNTER

    def _wanted(self, header: str) -> list[tuple[int, str, MetricKind]]:
        columns = self._columns.get(header)
        if columns is None:
            proto, _, names = header.partition(":")
            columns = self._columns[header] = [
                (index, *series)
                for index, name in enumerate(names.split())
                if (series := self._series(f"{proto}_{name}")) is not None
            ]
        return columns

    def collect(self) -> list[Sample]:
        samples = []
        for path in ("/proc/net/netstat", "/proc/net/snmp"):
            try:
                lines = self._files.read(path).splitlines()
            except OSError:
                continue
            # Pairs of lines: "Proto: Name Name ..." then "Proto: value value ...".
            for header, row in zip(lines[::2], lines[1::2], strict=False):
                columns = self._wanted(header)
                if columns:
                    values = row.partition(":")[2].split()
                    samples += [
                        Sample(name, float(values[index]), {}, kind)
                        for index, name, kind in columns
                        if index < len(values)
                    ]
        try:
            snmp6 = self._files.read("/proc/net/snmp6").splitlines()
        except OSError:
            snmp6 = []
        for line in snmp6:
            key, _, raw = line.partition(" ")
            if key not in self._snmp6:
                # "Udp6InDatagrams" is protocol "Udp6", field "InDatagrams".
                six = key.find("6")
                self._snmp6[key] = (
                    self._series(f"{key[: six + 1]}_{key[six + 1 :]}") if six > 0 else None
                )
            series = self._snmp6[key]
            if series is not None:
                samples.append(Sample(series[0], float(raw), {}, series[1]))
        return samples


class SockstatPart:
    """``node_sockstat_<PROTO>_<field>`` gauges from /proc/net/sockstat and sockstat6.

    ``mem`` fields count pages; each is also sent as ``..._mem_bytes``.

    Args:
        files: for ``/proc/net/sockstat{,6}``.
        page_size: bytes per page (``os.sysconf("SC_PAGE_SIZE")`` on the host).
    """

    def __init__(self, files: FileSource, page_size: int = 4096) -> None:
        self._files = files
        self._page_size = page_size

    def collect(self) -> list[Sample]:
        samples = []
        for path in ("/proc/net/sockstat", "/proc/net/sockstat6"):
            try:
                text = self._files.read(path)
            except OSError:
                continue
            for line in text.splitlines():
                proto, _, rest = line.partition(":")
                parts = rest.split()
                for field, raw in zip(parts[::2], parts[1::2], strict=False):
                    if proto == "sockets":
                        samples.append(
                            Sample(f"node_sockstat_sockets_{field}", float(raw), {}, GAUGE)
                        )
                        continue
                    name = f"node_sockstat_{proto}_{field}"
                    samples.append(Sample(name, float(raw), {}, GAUGE))
                    if field == "mem":
                        samples.append(
                            Sample(f"{name}_bytes", float(int(raw) * self._page_size), {}, GAUGE)
                        )
        return samples


class SoftnetPart:
    """``node_softnet_{processed,dropped,times_squeezed}_total{cpu}``, from softnet_stat."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        try:
            text = self._files.read("/proc/net/softnet_stat")
        except OSError:
            return []
        samples = []
        for cpu, line in enumerate(text.splitlines()):
            fields = line.split()
            if len(fields) < 3:
                continue
            labels = {"cpu": str(cpu)}
            samples += [
                Sample("node_softnet_processed_total", float(int(fields[0], 16)), labels, COUNTER),
                Sample("node_softnet_dropped_total", float(int(fields[1], 16)), labels, COUNTER),
                Sample(
                    "node_softnet_times_squeezed_total", float(int(fields[2], 16)), labels, COUNTER
                ),
            ]
        return samples


class ArpPart:
    """``node_arp_entries{device}``: the ARP table's entries per interface."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        try:
            lines = self._files.read("/proc/net/arp").splitlines()[1:]
        except OSError:
            return []
        counts: dict[str, int] = {}
        for line in lines:
            fields = line.split()
            if len(fields) >= 6:
                counts[fields[5]] = counts.get(fields[5], 0) + 1
        return [
            Sample("node_arp_entries", float(n), {"device": d}, GAUGE)
            for d, n in sorted(counts.items())
        ]


class UdpQueuesPart:
    """``node_udp_queues{ip="v4"|"v6", queue="rx"|"tx"}``: bytes queued on UDP sockets."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        samples = []
        for ip, path in (("v4", "/proc/net/udp"), ("v6", "/proc/net/udp6")):
            try:
                lines = self._files.read(path).splitlines()[1:]
            except OSError:
                continue
            tx = rx = 0
            for line in lines:
                fields = line.split()
                if len(fields) > 4:
                    tx_hex, _, rx_hex = fields[4].partition(":")
                    tx += int(tx_hex, 16)
                    rx += int(rx_hex, 16)
            samples += [
                Sample("node_udp_queues", float(rx), {"ip": ip, "queue": "rx"}, GAUGE),
                Sample("node_udp_queues", float(tx), {"ip": ip, "queue": "tx"}, GAUGE),
            ]
        return samples


# node_exporter 1.5's conntrack statistics (summed over CPUs), all gauges.
_CONNTRACK_STATS = (
    "found", "invalid", "ignore", "insert", "insert_failed", "drop", "early_drop",
    "search_restart",
)  # fmt: skip


class ConntrackPart:
    """``node_nf_conntrack_entries``, ``..._entries_limit`` and ``node_nf_conntrack_stat_*``."""

    def __init__(self, files: FileSource) -> None:
        self._files = files

    def collect(self) -> list[Sample]:
        try:
            entries = float(self._files.read("/proc/sys/net/netfilter/nf_conntrack_count"))
            limit = float(self._files.read("/proc/sys/net/netfilter/nf_conntrack_max"))
        except (OSError, ValueError):
            return []
        samples = [
            Sample("node_nf_conntrack_entries", entries, {}, GAUGE),
            Sample("node_nf_conntrack_entries_limit", limit, {}, GAUGE),
        ]
        try:
            lines = self._files.read("/proc/net/stat/nf_conntrack").splitlines()
        except OSError:
            return samples
        if not lines:
            return samples
        columns = lines[0].split()
        totals = dict.fromkeys(columns, 0)
        for line in lines[1:]:
            for column, raw in zip(columns, line.split(), strict=False):
                totals[column] += int(raw, 16)
        samples += [
            Sample(f"node_nf_conntrack_stat_{stat}", float(totals[stat]), {}, GAUGE)
            for stat in _CONNTRACK_STATS
            if stat in totals
        ]
        return samples

"""Keep the kernel from lending the test stacks' ports to outgoing connections.

Several stack ports (the three-broker cluster's 39092, any port moved far enough
by ``HOSTSTREAM_STACK_PORT_OFFSET``) lie in Linux's ephemeral range, from which
the kernel picks the local port of every outgoing TCP connection. A client socket
that happens to hold such a port makes the service that needs it fail to start.
``net.ipv4.ip_local_reserved_ports`` takes ports out of that pool without
stopping anything from listening on them.

CI runs this as root on a machine of its own: ``python -m tests.support.reserve_ports``.
Elsewhere it prints what it would reserve and changes nothing unless it may write
the setting.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hoststream.stack import Stack
from hoststream.stack.manager import REGION_SERVICES
from tests.support.regions import REGIONS_PORT_SHIFT
from tests.support.secure import SECURE_PORT_SHIFT, SECURE_SERVICES
from tests.support.services import PORT_OFFSET

RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def stack_ports(root: Path, offset: int = PORT_OFFSET) -> set[int]:
    """Every port the test session's stacks bind: main, cluster, secure, two regions."""
    main = Stack(root / "main", port_offset=offset, regions=1, secure=False)
    cluster = Stack(
        root / "cluster", brokers=3, services=["kafka"], port_offset=offset, secure=False
    )
    secure = Stack(
        root / "secure",
        services=SECURE_SERVICES,
        port_offset=offset + SECURE_PORT_SHIFT,
        secure=True,
    )
    regions = Stack(
        root / "regions",
        services=REGION_SERVICES,
        port_offset=offset + REGIONS_PORT_SHIFT,
        regions=2,
    )
    stacks = [main, cluster, secure, regions, regions.other_region()]
    return {port for stack in stacks for service in stack.services() for port in service.ports}


def ephemeral_range() -> range:
    low, high = (int(part) for part in EPHEMERAL.read_text().split())
    return range(low, high + 1)


def merged(current: str, ports: set[int]) -> str:
    """The setting's value with ``ports`` added to what it already lists."""
    entries = [entry for entry in current.strip().split(",") if entry]
    return ",".join([*entries, *(str(port) for port in sorted(ports))])


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        ports = stack_ports(Path(scratch))
    exposed = {port for port in ports if port in ephemeral_range()}
    if not exposed:
        print("reserve-ports: no stack port lies in the ephemeral range")
        return 0
    listed = ", ".join(str(port) for port in sorted(exposed))
    try:
        RESERVED.write_text(merged(RESERVED.read_text(), exposed))
    except OSError as error:
        print(f"reserve-ports: could not reserve {listed} ({error}); a busy port fails loudly")
        return 0
    print(f"reserve-ports: kept {listed} out of the ephemeral range")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Two local regions and MirrorMaker 2 between them (a pytest plugin).

``stack up --regions 2`` with the stores only (no Alertmanager, tracing or log
store), in its own state folder and on ports of its own
(``HOSTSTREAM_STACK_PORT_OFFSET`` + :data:`REGIONS_PORT_SHIFT`, region B 2000
above), so tests may stop its services without touching the shared stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, TopicPartition

from hoststream.config import Settings
from hoststream.stack import Stack
from hoststream.stack.kafka import KafkaBroker
from hoststream.stack.manager import REGION_SERVICES
from hoststream.stack.registry import SchemaRegistry
from tests.support.paths import STATE_DIR
from tests.support.services import PORT_OFFSET

#: Above the shared stack's offset: none of the two regions' ports is one of its
#: ports, or the three-broker cluster's.
REGIONS_PORT_SHIFT = 500


@dataclass(frozen=True)
class Region:
    """One region: its name, settings pointing at its stores, and its stack."""

    name: str
    settings: Settings
    stack: Stack

    def broker(self) -> KafkaBroker:
        return next(s for s in self.stack.services() if isinstance(s, KafkaBroker))

    def registry(self) -> SchemaRegistry:
        return next(s for s in self.stack.services() if isinstance(s, SchemaRegistry))

    def records(self, topic: str) -> int:
        """Records the topic holds (end minus start offsets); 0 when it does not exist."""
        consumer = Consumer(
            {"bootstrap.servers": self.settings.kafka_bootstrap, "group.id": "tests-count"}
        )
        try:
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                return 0
            total = 0
            for partition in metadata.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                total += high - low
            return total
        finally:
            consumer.close()


@dataclass(frozen=True)
class TwoRegions:
    stack: Stack
    a: Region
    b: Region


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        region=env["HOSTSTREAM_REGION"],
        kafka_bootstrap=env["HOSTSTREAM_KAFKA_BOOTSTRAP"],
        schema_registry_url=env["HOSTSTREAM_SCHEMA_REGISTRY_URL"],
        vm_url=env["HOSTSTREAM_VM_URL"],
        sql_dsn=env["HOSTSTREAM_SQL_DSN"],
    )


@pytest.fixture(scope="session")
def two_regions() -> Iterator[TwoRegions]:
    """Regions ``region-a`` and ``region-b`` with MirrorMaker 2; stopped afterwards if
    this session started them (`stack up` also restarts a stuck MirrorMaker 2)."""
    stack = Stack(
        STATE_DIR / "regions",
        lib=STATE_DIR / "lib",
        services=REGION_SERVICES,
        port_offset=PORT_OFFSET + REGIONS_PORT_SHIFT,
        regions=2,
    )
    # Left running for the next session if it ran before this one.
    was_running = any(s.pid is not None for s in stack.status())
    env_a = stack.up()
    other = stack.other_region()
    env_b = other.environment()
    try:
        yield TwoRegions(
            stack,
            Region(env_a["HOSTSTREAM_REGION"], _settings(env_a), stack),
            Region(env_b["HOSTSTREAM_REGION"], _settings(env_b), other),
        )
    finally:
        if not was_running:
            stack.down()

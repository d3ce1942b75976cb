"""Fixtures that give tests the real services (a pytest plugin).

Bring your own: when ``HOSTSTREAM_KAFKA_BOOTSTRAP`` is set, the services named
by the ``HOSTSTREAM_*`` variables are used as they are. Otherwise the local
stack is started under ``.hoststream/`` (or reused if it already runs) and
stopped afterwards if this session started it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from hoststream.config import Settings, load_settings
from hoststream.kafka import TopicSpec, admin_client, ensure_topics
from hoststream.stack import Stack
from tests.support.paths import STATE_DIR

#: HOSTSTREAM_STACK_PORT_OFFSET lets a second checkout test beside a running stack.
PORT_OFFSET = load_settings().stack_port_offset


@pytest.fixture(scope="session")
def services() -> Iterator[Settings]:
    """Settings pointing at real Kafka, schema registry, VictoriaMetrics and PostgreSQL."""
    if os.environ.get("HOSTSTREAM_KAFKA_BOOTSTRAP"):
        yield load_settings()
        return
    stack = Stack(STATE_DIR, port_offset=PORT_OFFSET)
    already_up = all(s.healthy for s in stack.status())
    env = stack.up()
    os.environ.update(env)
    try:
        yield load_settings()
    finally:
        for key in env:
            os.environ.pop(key, None)
        if not already_up:
            stack.down()


@dataclass(frozen=True)
class Cluster:
    settings: Settings
    stack: Stack


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[Cluster]:
    """A three-broker KRaft cluster (RF 3, min ISR 2) beside the main stack."""
    stack = Stack(
        STATE_DIR / "cluster",
        lib=STATE_DIR / "lib",
        brokers=3,
        services=["kafka"],
        port_offset=PORT_OFFSET,
    )
    already_up = all(s.healthy for s in stack.status())
    env = stack.up()
    try:
        yield Cluster(
            Settings(kafka_bootstrap=env["HOSTSTREAM_KAFKA_BOOTSTRAP"], topic_replication_factor=3),
            stack,
        )
    finally:
        if not already_up:
            stack.down()


@pytest.fixture
def unique() -> str:
    """A name no other test uses: for topics, consumer groups and subjects."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_topic(services: Settings, unique: str) -> Iterator[Callable[..., str]]:
    """Create a topic of this test's own; deleted when the test ends."""
    created: list[tuple[Settings, str]] = []

    def make(suffix: str = "", partitions: int = 1, settings: Settings | None = None) -> str:
        target = settings or services
        name = f"{unique}.{suffix}" if suffix else unique
        ensure_topics(target, [TopicSpec(name, partitions, target.topic_replication_factor)])
        created.append((target, name))
        return name

    yield make
    for target, name in created:
        admin_client(target).delete_topics([name], operation_timeout=10)

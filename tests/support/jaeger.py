"""The stack's Jaeger, started if it is not running already (a pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hoststream.config import Settings
from hoststream.stack import Stack
from hoststream.stack.jaeger import Jaeger
from tests.support.paths import STATE_DIR
from tests.support.services import PORT_OFFSET


@pytest.fixture(scope="session")
def jaeger(services: Settings) -> Iterator[Jaeger]:
    """A real Jaeger receiving OTLP; stopped afterwards only if this session started it."""
    # Not Stack.up(): that would rewrite stack.env for everyone using the running stack.
    stack = Stack(STATE_DIR, port_offset=PORT_OFFSET, services=["jaeger"])
    [service] = stack.services()
    assert isinstance(service, Jaeger)
    already_up = service.healthy()
    if not already_up:
        service.start()
    yield service
    if not already_up:
        service.stop()

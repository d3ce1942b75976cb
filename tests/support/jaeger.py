"""The stack's Jaeger and VictoriaLogs, started if not running already (a pytest plugin).

Either waits for its background build first (``LocalService.start``), as a
fresh checkout's `make test` starts them while it installs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hoststream.config import Settings
from hoststream.stack import Stack
from hoststream.stack.jaeger import Jaeger
from hoststream.stack.victorialogs import VictoriaLogs
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


@pytest.fixture(scope="session")
def victorialogs(services: Settings) -> Iterator[VictoriaLogs]:
    """A real VictoriaLogs receiving OTLP logs; stopped afterwards only if this session started it.

    Not Stack.up(), for the same reason as :func:`jaeger`.
    """
    stack = Stack(STATE_DIR, port_offset=PORT_OFFSET, services=["victorialogs"])
    [service] = stack.services()
    assert isinstance(service, VictoriaLogs)
    already_up = service.healthy()
    if not already_up:
        service.start()
    yield service
    if not already_up:
        service.stop()

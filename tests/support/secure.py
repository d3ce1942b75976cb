"""The secure stack for the tests (a pytest plugin): ``hoststream stack up --secure``.

It runs beside the plaintext stack, in its own state folder and on its own
ports: the run's ``HOSTSTREAM_STACK_PORT_OFFSET`` plus :data:`SECURE_PORT_SHIFT`.
Started once per session (reused if it already runs) and stopped afterwards if
this session started it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from hoststream.config import Settings, load_settings
from hoststream.stack import Stack
from tests.support.paths import STATE_DIR
from tests.support.services import PORT_OFFSET

#: Where the secure stack's ports sit above the run's own.
SECURE_PORT_SHIFT = 450
SECURE_SERVICES = ("postgres", "victoriametrics", "kafka", "schema-registry")


@dataclass(frozen=True)
class SecureStack:
    """The running secure stack and each principal's settings."""

    stack: Stack

    def env(self, component: str | None = None) -> dict[str, str]:
        """``stack.env`` plus one component's (or, for None, the admin user's) settings."""
        own = (
            self.stack.component_environment(component)
            if component
            else self.stack.admin_environment()
        )
        return {**self.stack.environment(), **own}

    def process_env(self, component: str, **extra: str) -> dict[str, str]:
        """A child process' environment: this stack's settings and no other HOSTSTREAM_*."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("HOSTSTREAM_")}
        return {**base, **self.env(component), **extra}

    def settings(self, component: str | None = None, **updates: Any) -> Settings:
        """The settings a component would load (secret files read), with ``updates``."""
        saved = {k: v for k, v in os.environ.items() if k.startswith("HOSTSTREAM_")}
        try:
            for key in saved:
                del os.environ[key]
            os.environ.update(self.env(component))
            return load_settings(**updates)
        finally:
            for key in [k for k in os.environ if k.startswith("HOSTSTREAM_")]:
                del os.environ[key]
            os.environ.update(saved)


@pytest.fixture(scope="session")
def secure_stack() -> Iterator[SecureStack]:
    stack = Stack(
        STATE_DIR / "secure-stack",
        lib=STATE_DIR / "lib",
        services=SECURE_SERVICES,
        port_offset=PORT_OFFSET + SECURE_PORT_SHIFT,
        secure=True,
    )
    already_up = all(s.healthy for s in stack.status())
    stack.up()
    try:
        yield SecureStack(stack)
    finally:
        if not already_up:
            stack.down()

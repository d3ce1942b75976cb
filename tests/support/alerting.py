"""A real Alertmanager and fake PagerDuty / Opsgenie servers for alert routing (a pytest plugin)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from hoststream.stack.alertmanager import ALERTMANAGER_PORT, Alertmanager
from hoststream.stack.base import StackPaths
from tests.support.alerts import GENIE_KEY
from tests.support.doubles import FakeOpsgenie, FakePagerDuty
from tests.support.paths import STATE_DIR
from tests.support.services import PORT_OFFSET


@pytest.fixture(scope="session")
def alertmanager_url() -> Iterator[str]:
    """``HOSTSTREAM_ALERTMANAGER_URL``, or the stack's Alertmanager (started if need be)."""
    url = os.environ.get("HOSTSTREAM_ALERTMANAGER_URL")
    if url:
        yield url
        return
    root = STATE_DIR.resolve()
    service = Alertmanager(StackPaths(root, root / "lib"), ALERTMANAGER_PORT + PORT_OFFSET)
    service.start_timeout_s = 60
    started_here = service.running_pid() is None
    service.start()
    try:
        yield service.address
    finally:
        if started_here:
            service.stop()


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
def opsgenie() -> Iterator[FakeOpsgenie]:
    with FakeOpsgenie(GENIE_KEY) as fake:
        yield fake

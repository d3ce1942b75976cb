"""A real Alertmanager and fake PagerDuty / Opsgenie servers for the alert-routing tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from hoststream.stack.alertmanager import ALERTMANAGER_PORT, Alertmanager
from hoststream.stack.base import StackPaths
from tests.conftest import PORT_OFFSET, STATE_DIR
from tests.fakes import FakeOpsgenie, FakePagerDuty
from tests.unit.sinks.alerts.alerts_data import GENIE_KEY


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

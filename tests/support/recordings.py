"""Recorded sources shared by the producer tests, no services needed (a pytest plugin)."""

from __future__ import annotations

import pytest

from hoststream.producers.collectors import RecordedSource
from tests.support.paths import DATA


@pytest.fixture
def vm() -> RecordedSource:
    """A Debian 12 VM with 2 CPUs, recorded next to a node_exporter 1.5.0 scrape."""
    return RecordedSource.from_file(DATA / "debian12_vm_2cpu.json")


@pytest.fixture
def edge() -> RecordedSource:
    """Hand-written: the mounts, devices and interfaces filters must tell apart."""
    return RecordedSource.from_file(DATA / "edge_cases.json")

"""The worker says so, once, while it cannot read its partitions' ends, and when it can again.

The admin client is a TEST DOUBLE (tests/support/doubles/admin.py).
"""

from __future__ import annotations

import logging

import pytest
from faust.types import TP

from hoststream.config import Settings
from hoststream.streams.group_offsets import GroupOffsets
from tests.support.doubles.admin import RestartingBrokerAdmin

SOURCES = [TP("metrics.system", 0)]


def test_unread_ends_are_warned_about_once_and_their_return_noted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = RestartingBrokerAdmin(ends={("metrics.system", 0): 4})
    offsets = GroupOffsets(Settings(), "group", admin=admin)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="hoststream.streams.group_offsets")
    assert offsets.ends(SOURCES) == {SOURCES[0]: 4}
    admin.stop()
    assert offsets.ends(SOURCES) == {}
    assert offsets.ends(SOURCES) == {}
    admin.start()
    assert offsets.ends(SOURCES) == {SOURCES[0]: 4}
    assert [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records] == [
        ("WARNING", "partition ends not read"),
        ("INFO", "partition ends read again: windows close on wall time"),
    ]

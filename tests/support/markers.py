"""Markers every test gets from where it lives (a pytest plugin)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration needs the real services: mark it so
    # `-m "not integration"` runs the unit tests alone.
    for item in items:
        if "tests/integration/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)

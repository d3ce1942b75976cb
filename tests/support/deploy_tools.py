"""The deployment checkers the deploy tests run: helm and Docker Compose v2.

Both are built from the Go module proxy by ``deploy/local/build-go-tool.sh``
into the state dir's ``lib`` (``.ci/run`` builds them before the tests). On a
developer's machine without them the tests that need one are skipped with the
command that builds it; under CI (``CI=true``) a missing tool fails instead,
so a broken build can never pass as a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.paths import STATE_DIR

__all__ = ["deploy_tool"]


def deploy_tool(name: str) -> Path:
    """The path of ``name`` (``helm`` or ``docker-compose``), or skip/fail as above."""
    lib = Path(os.environ.get("HOSTSTREAM_LIB_DIR", STATE_DIR / "lib"))
    binary = lib / name / name
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    message = f"{binary} is missing; build it with: bash deploy/local/build-go-tool.sh {name}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)

"""Background builds: one build at a time, told apart by its lock, and a failed one reported.

The build scripts here are small stand-ins for deploy/local/build-*.sh that
follow the same rules (flock the lock file while working, write the binary last).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hoststream.errors import ServiceStartError
from hoststream.stack.base import StackPaths
from hoststream.stack.builds import BackgroundBuild

SCRIPT = """\
set -eu
exec 9>"$HOSTSTREAM_STATE_DIR/build/tool.lock"
flock 9
[ -x "$HOSTSTREAM_LIB_DIR/tool" ] && exit 0
echo started >>"$HOSTSTREAM_STATE_DIR/starts"
sleep {sleep}
{finish}
"""
BUILD_OK = 'printf "#!/bin/sh\\n" >"$HOSTSTREAM_LIB_DIR/tool"; chmod +x "$HOSTSTREAM_LIB_DIR/tool"'


def build_for(tmp_path: Path, sleep: float = 1.5, finish: str = BUILD_OK) -> BackgroundBuild:
    paths = StackPaths(tmp_path / "state", tmp_path / "lib")
    paths.lib.mkdir(parents=True)
    script = tmp_path / "build-tool.sh"
    script.write_text(SCRIPT.format(sleep=sleep, finish=finish))
    return BackgroundBuild("tool", script, paths.lib / "tool", paths)


def test_a_build_runs_in_the_background_and_reads_as_building_until_done(tmp_path: Path) -> None:
    build = build_for(tmp_path)
    assert not build.built()
    assert not build.building()
    assert build.start() is True
    deadline = time.monotonic() + 10
    while not build.building() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert build.building()
    assert build.start() is False  # one build at a time
    build.wait(timeout_s=30)
    assert build.built()
    assert not build.building()
    assert (tmp_path / "state" / "starts").read_text() == "started\n"
    assert build.start() is False  # built: nothing to do


def test_a_failed_build_is_reported_with_its_log(tmp_path: Path) -> None:
    build = build_for(tmp_path, sleep=0.2, finish='echo "go: module lookup disabled" >&2; exit 1')
    with pytest.raises(ServiceStartError, match="building tool failed") as failure:
        build.wait(timeout_s=60)
    assert "go: module lookup disabled" in str(failure.value)
    assert not build.built()


def test_a_build_that_takes_too_long_is_reported(tmp_path: Path) -> None:
    build = build_for(tmp_path, sleep=30)
    with pytest.raises(ServiceStartError, match="did not finish within 2s"):
        build.wait(timeout_s=2)

"""The Dockerfile, parsed with Docker's own parser (the ``dockerfile`` package
wraps BuildKit's Go parser). No Docker engine runs here, so the image itself is
never built by these tests; they check what the chart and compose rely on."""

from __future__ import annotations

import tomllib
from pathlib import Path

import dockerfile
import yaml

REPO = Path(__file__).resolve().parents[3]


def stages() -> list[list[dockerfile.Command]]:
    out: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(REPO / "Dockerfile")):
        if command.cmd == "FROM":
            out.append([])
        out[-1].append(command)
    return out


def final_stage() -> dict[str, dockerfile.Command]:
    return {command.cmd: command for command in stages()[-1]}


def test_the_runtime_stage_is_slim_and_has_no_build_tools() -> None:
    build, runtime = stages()
    assert build[0].value[0] == runtime[0].value[0] == "python:3.11-slim-bookworm"
    # Only the virtual env comes over from the build stage.
    copies = [c for c in runtime if c.cmd == "COPY"]
    assert [(c.flags, c.value) for c in copies] == [
        (("--from=build",), ("/opt/hoststream", "/opt/hoststream"))
    ]


def test_it_runs_as_the_non_root_user_the_chart_expects() -> None:
    (user,) = final_stage()["USER"].value
    uid, gid = user.split(":")
    values = yaml.safe_load((REPO / "deploy" / "helm" / "hoststream" / "values.yaml").read_text())
    assert int(uid) == values["podSecurityContext"]["runAsUser"] != 0
    assert int(gid) == values["podSecurityContext"]["runAsGroup"]


def test_the_command_picks_the_component() -> None:
    stage = final_stage()
    assert stage["ENTRYPOINT"].json
    assert stage["ENTRYPOINT"].value == ("hoststream",)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "hoststream" in scripts
    env = dict(zip(stage["ENV"].value[::2], stage["ENV"].value[1::2], strict=True))
    # In a container /metrics and the API must listen beyond loopback.
    assert env["HOSTSTREAM_METRICS_HOST"] == env["HOSTSTREAM_API_HOST"] == "0.0.0.0"


def test_every_copied_source_exists_and_is_not_ignored() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".hoststream", ".git"} <= ignored
    build = stages()[0]
    for copy in (c for c in build if c.cmd == "COPY"):
        for source in copy.value[:-1]:
            assert (REPO / source).exists(), source
            assert source not in ignored

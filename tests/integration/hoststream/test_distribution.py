"""The wheel: only the ``hoststream`` package, as real files, and it installs beside others.

A wheel is built from a clean copy of the repository (``pip wheel --no-deps``) and
installed into a fresh virtual env together with a generated package that has top-level
``api`` and ``schemas`` modules of its own; both must work in one process. The
dependencies come from a wheelhouse under ``.hoststream/wheelhouse``, filled from the
package index (pinned by constraints.txt) the first time and reused afterwards.
An editable install, as ``make install`` makes one, is checked the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import venv
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.support.paths import REPO, STATE_DIR

pytestmark = pytest.mark.slow

WHEELHOUSE = STATE_DIR / "wheelhouse"
#: pyproject.toml's [tool.setuptools.package-data]: what ships besides the modules.
PACKAGE_DATA = ("py.typed", "*.avsc", "*.yaml", "*.xml", "*.properties")
#: Not part of a build; copying them would only slow the copy down or leak stale output.
NOT_SOURCES = (".git", ".hoststream", ".venv", "build", "dist", "*.egg-info", "__pycache__")
NOT_SOURCES += (".mypy_cache", ".ruff_cache", ".pytest_cache", "bench", "tests")
LINKED = ("api", "producers", "schemas", "sinks", "streams")


def attempt(*args: str | Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a command outside the repository, without the developer's PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run(*args: str | Path, cwd: Path, timeout: float = 900) -> str:
    """:func:`attempt`, which must succeed; its standard output."""
    result = attempt(*args, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def shipped_sources() -> set[str]:
    """Every module and package-data file reachable from hoststream/, links followed."""
    found = set()
    for folder, dirs, files in os.walk(REPO / "hoststream", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py") or any(fnmatch(name, p) for p in PACKAGE_DATA):
                found.add((Path(folder) / name).relative_to(REPO).as_posix())
    return found


def neighbour_wheel(directory: Path) -> Path:
    """A wheel of another distribution whose top-level modules are ``api`` and ``schemas``."""
    files = {
        "api/__init__.py": 'OWNER = "neighbour"\n',
        "schemas.py": 'OWNER = "neighbour"\n',
        "neighbour-1.0.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: neighbour\nVersion: 1.0\n"
        ),
        "neighbour-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: hoststream-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    files["neighbour-1.0.dist-info/RECORD"] = "\n".join(
        [*record, "neighbour-1.0.dist-info/RECORD,,"]
    )
    path = directory / "neighbour-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's sources, so no earlier build/ output can leak into a build."""
    copy = tmp_path_factory.mktemp("source") / "hoststream"
    shutil.copytree(REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    return copy


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hoststream wheel, as ``pip wheel --no-deps`` builds it."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, source, cwd=out)
    [built] = out.glob("hoststream-*.whl")
    return built


def install(root: Path, wheel: Path, *targets: str | Path) -> Path:
    """A new virtual env under ``root`` with ``targets`` installed from the wheelhouse; its bin/.

    ``wheel`` names the dependencies to fetch when the wheelhouse lacks some.
    """
    venv.create(root / "env", with_pip=True)
    python = root / "env" / "bin" / "python"
    offline = [python, "-m", "pip", "install", "-q", "--no-compile", "--no-index"]
    offline += ["--find-links", WHEELHOUSE, "-c", REPO / "constraints.txt", *targets]
    try:
        run(*offline, cwd=root)
    except AssertionError:
        # First run, or the dependencies changed: fill the wheelhouse from the index,
        # with what an editable install builds with.
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        fill = [python, "-m", "pip", "wheel", "-q", "-c", REPO / "constraints.txt"]
        fill += ["--find-links", WHEELHOUSE, "-w", WHEELHOUSE, wheel, "setuptools>=77", "wheel"]
        run(*fill, cwd=root)
        for own in WHEELHOUSE.glob("hoststream-*.whl"):
            own.unlink()  # the wheel under test is always the one just built
        run(*offline, cwd=root)
    return root / "env" / "bin"


@pytest.fixture(scope="module")
def fresh_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual env with the hoststream wheel and the neighbour installed; its bin/."""
    root = tmp_path_factory.mktemp("venv")
    return install(root, wheel, wheel, neighbour_wheel(root))


@pytest.fixture(scope="module")
def editable_env(source: Path, wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual env with hoststream installed editable, as deploy/local/install.sh does."""
    return install(tmp_path_factory.mktemp("editable"), wheel, "-e", source)


def test_the_wheel_holds_only_the_hoststream_package_as_real_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        entries = archive.infolist()
    names = {e.filename for e in entries}
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"hoststream", wheel.name.split("-py3")[0] + ".dist-info"}
    assert [e.filename for e in entries if stat.S_ISLNK(e.external_attr >> 16)] == []
    shipped = {n for n in names if n.startswith("hoststream/")}
    assert shipped == shipped_sources()
    for package in LINKED:
        assert f"hoststream/{package}/__init__.py" in shipped
        assert f"hoststream/{package}/py.typed" in shipped
    assert {
        "hoststream/schemas/metric_event.avsc",
        "hoststream/schemas/history/metric_event.v1.avsc",
        "hoststream/streams/rules/default.yaml",
        "hoststream/sinks/alerts/default_routes.yaml",
    } <= shipped


CHECK = """
import json
from pathlib import Path

import hoststream.api.app, hoststream.producers.agent, hoststream.sinks, hoststream.streams
from hoststream.config import Settings
from hoststream.schemas import MetricEvent, Sample, codec_for, load_schema
from hoststream.sinks.alerts.routing import DEFAULT_ROUTES_FILE, load_routes
from hoststream.streams.rules.loader import load_rules

import api, schemas

RECEIVERS = ["alertmanager", "opsgenie", "pagerduty"]

codec = codec_for(Settings(schema_registry_url=None), MetricEvent)
event = MetricEvent("h1", "system", 1_700_000_000_000, (Sample("node_load1", 0.5),), seq=1)
print(json.dumps({
    "neighbour": [api.OWNER, schemas.OWNER, api.__file__, schemas.__file__],
    "hoststream": [hoststream.api.__file__, hoststream.schemas.__file__],
    "schema": load_schema("metric_event").full_name,
    "round_trip": codec.deserializer(codec.serializer(event, None), None) == event,
    "rules": len(load_rules().rules),
    "routes": sorted(load_routes(DEFAULT_ROUTES_FILE, available=RECEIVERS).receivers),
}))
"""


def test_hoststream_and_a_neighbours_api_and_schemas_work_side_by_side(
    fresh_env: Path, tmp_path: Path
) -> None:
    [site] = fresh_env.parent.glob("lib/python3*/site-packages")
    assert "produce" in run(fresh_env / "hoststream", "--help", cwd=tmp_path)

    seen = json.loads(run(fresh_env / "python", "-c", CHECK, cwd=tmp_path))

    assert seen["neighbour"] == [
        "neighbour",
        "neighbour",
        str(site / "api" / "__init__.py"),
        str(site / "schemas.py"),
    ]
    assert seen["hoststream"] == [
        str(site / "hoststream" / "api" / "__init__.py"),
        str(site / "hoststream" / "schemas" / "__init__.py"),
    ]
    assert seen["schema"] == "io.hoststream.metrics.MetricEvent"
    assert seen["round_trip"] is True
    assert seen["rules"] > 0
    assert seen["routes"] == ["alertmanager", "opsgenie", "pagerduty"]
    for generic in ("producers", "streams", "sinks"):
        assert not (site / generic).exists()
    assert not (site / "hoststream" / "api").is_symlink()


def test_an_editable_install_reaches_every_package_through_the_links(
    editable_env: Path, source: Path, tmp_path: Path
) -> None:
    assert "produce" in run(editable_env / "hoststream", "--help", cwd=tmp_path)
    check = (
        "import json, hoststream.api.app, hoststream.producers.agent, hoststream.sinks.app\n"
        "from hoststream.streams.rules.loader import load_rules\n"
        "from hoststream.schemas import load_schema\n"
        "print(json.dumps([hoststream.api.__file__, hoststream.sinks.__file__,"
        " load_schema('alert_event').full_name, len(load_rules().rules)]))"
    )
    api, sinks, schema, rules = json.loads(run(editable_env / "python", "-c", check, cwd=tmp_path))

    assert api == str(source / "hoststream" / "api" / "__init__.py")
    assert sinks == str(source / "hoststream" / "sinks" / "__init__.py")
    assert schema == "io.hoststream.alerts.AlertEvent"
    assert rules > 0
    for generic in ("api", "schemas", "producers", "streams", "sinks"):
        result = attempt(editable_env / "python", "-c", f"import {generic}", cwd=tmp_path)
        assert result.returncode == 1
        assert f"No module named {generic!r}" in result.stderr

"""What makes later starts quicker: Kafka maps the classes of its last run from
an archive, the registry keeps its own; VictoriaMetrics with vmui is preferred
once built. Unit tests: commands are read, nothing is started."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hoststream.stack import Stack
from hoststream.stack.kafka import KafkaBroker
from hoststream.stack.registry import SchemaRegistry
from hoststream.stack.victoriametrics import VictoriaMetrics

REPO = Path(__file__).resolve().parents[4]


def only_service(stack: Stack) -> object:
    [service] = stack.services()
    return service


def test_kafka_writes_its_class_archive_on_the_first_run_and_maps_it_later(
    tmp_path: Path,
) -> None:
    lib = tmp_path / "lib"
    (lib / "kafka").mkdir(parents=True)
    (lib / "kafka" / "kafka_2.13-4.1.1.jar").write_text("")
    broker = only_service(Stack(tmp_path, lib=lib, services=["kafka"]))
    assert isinstance(broker, KafkaBroker)
    archive = broker.class_archive()
    assert f"-XX:ArchiveClassesAtExit={archive}" in broker.command()
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"")
    command = broker.command()
    assert f"-XX:SharedArchiveFile={archive}" in command
    assert not any("ArchiveClassesAtExit" in arg for arg in command)
    # Other jars (a new Kafka): another archive, written afresh.
    (lib / "kafka" / "kafka_2.13-4.1.2.jar").write_text("")
    assert broker.class_archive() != archive


def test_the_registry_compiles_with_c1_and_keeps_a_class_archive(tmp_path: Path) -> None:
    registry = only_service(Stack(tmp_path, services=["schema-registry"]))
    assert isinstance(registry, SchemaRegistry)
    command = registry.command()
    assert "-XX:TieredStopAtLevel=1" in command
    assert "-XX:+AutoCreateSharedArchive" in command
    archive = tmp_path.resolve() / "conf" / "schema-registry" / "classes.jsa"
    assert f"-XX:SharedArchiveFile={archive}" in command


def test_victoriametrics_runs_the_built_server_once_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debian = tmp_path / "usr-bin" / "victoria-metrics"
    debian.parent.mkdir()
    debian.write_text("#!/bin/sh\n")
    debian.chmod(0o755)
    monkeypatch.setenv("PATH", str(debian.parent))
    lib = tmp_path / "lib"
    vm = only_service(Stack(tmp_path, lib=lib, services=["victoriametrics"]))
    assert isinstance(vm, VictoriaMetrics)
    assert vm.command()[0] == str(debian.resolve())
    vm.built_binary.parent.mkdir(parents=True)
    vm.built_binary.write_text("#!/bin/sh\n")
    vm.built_binary.chmod(0o755)
    assert vm.command()[0] == str(vm.built_binary.resolve())
    assert not vm.outdated()  # not running


def test_victoriametrics_on_another_binary_than_the_preferred_one_is_outdated(
    tmp_path: Path,
) -> None:
    lib = tmp_path / "lib"
    vm = only_service(Stack(tmp_path, lib=lib, services=["victoriametrics"]))
    assert isinstance(vm, VictoriaMetrics)
    vm.built_binary.parent.mkdir(parents=True)
    vm.built_binary.write_text("#!/bin/sh\n")
    vm.built_binary.chmod(0o755)
    # A running server from another binary (here: Python standing in for Debian's).
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        vm._record_pid(stand_in.pid)
        assert vm.outdated()
    finally:
        stand_in.kill()
        stand_in.wait()
    assert not vm.outdated()


@pytest.mark.parametrize(
    ("script", "binary"),
    [("build-jaeger.sh", "jaeger/jaeger"), ("build-victorialogs.sh", "victorialogs/victoria-logs")],
)
def test_the_store_build_scripts_are_the_shared_go_build(
    tmp_path: Path, script: str, binary: str
) -> None:
    lib = tmp_path / "lib"
    out = lib / binary
    out.parent.mkdir(parents=True)
    out.write_text("#!/bin/sh\n")
    out.chmod(0o755)
    (out.parent / "VERSION").write_text("v0.0.1\n")
    env = {
        "PATH": "/usr/bin:/bin",  # no Go: an up-to-date binary must not need it
        "HOSTSTREAM_STATE_DIR": str(tmp_path / "state"),
        "HOSTSTREAM_LIB_DIR": str(lib),
        "HOSTSTREAM_JAEGER_VERSION": "v0.0.1",
        "HOSTSTREAM_VICTORIALOGS_VERSION": "v0.0.1",
    }
    deploy = REPO / "deploy" / "local"
    done = subprocess.run(
        ["bash", str(deploy / script)], check=False, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    # Another version is asked for: it must build, and without Go it says so.
    (out.parent / "VERSION").write_text("v0.0.0\n")
    if shutil.which("go", path=env["PATH"]):
        pytest.skip("Go is installed in /usr/bin here: the missing-Go message cannot be shown")
    done = subprocess.run(
        ["bash", str(deploy / script)], check=False, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "Go is missing" in done.stderr

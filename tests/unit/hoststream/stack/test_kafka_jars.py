"""The services run from Kafka's jars (the broker, MirrorMaker 2) start the same way.

Unit tests: files are written and commands read, nothing is started.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import StackPaths
from hoststream.stack.kafka import KafkaBroker
from hoststream.stack.kafka_jars import KafkaJarService
from hoststream.stack.mirrormaker import MirrorMaker2


def services(paths: StackPaths) -> list[KafkaJarService]:
    return [
        KafkaBroker(paths, 1, 1, paths.root / "cluster-id"),
        MirrorMaker2(paths, {"region-a": "127.0.0.1:9092", "region-b": "127.0.0.1:11092"}),
    ]


@pytest.mark.parametrize(
    ("index", "folder", "title"), [(0, "kafka", "Kafka"), (1, "mirrormaker", "MirrorMaker 2")]
)
def test_a_service_without_its_jars_stops_before_starting_and_says_how_to_get_them(
    tmp_path: Path, index: int, folder: str, title: str
) -> None:
    service = services(StackPaths(tmp_path, tmp_path / "lib"))[index]
    with pytest.raises(PrerequisiteMissingError) as raised:
        service.prepare()
    assert str(raised.value) == (
        f"{title} jars are missing from {tmp_path / 'lib' / folder}; run `make install`"
    )
    assert not service.paths.config(service.name).exists()


def test_mirrormaker_runs_from_its_jars_with_its_own_log_configuration(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "mirrormaker").mkdir(parents=True)
    (lib / "mirrormaker" / "connect-mirror-4.1.1.jar").write_text("")
    mirrormaker = services(StackPaths(tmp_path, lib))[1]
    mirrormaker.prepare()
    conf = tmp_path / "conf" / "mirrormaker2"
    assert (
        "logger.mirror.name = org.apache.kafka.connect.mirror"
        in (conf / "log4j2.properties").read_text()
    )
    assert "region-a->region-b.enabled = true" in (conf / "mm2.properties").read_text()
    command = mirrormaker.command()
    assert command[1:4] == ["-Xms128m", "-Xmx384m", "-XX:+UseSerialGC"]
    assert command[-5:] == [
        f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
        "-cp",
        f"{lib / 'mirrormaker'}/*",
        "org.apache.kafka.connect.mirror.MirrorMaker",
        str(conf / "mm2.properties"),
    ]


def test_the_broker_and_its_storage_tool_share_the_broker_jvm_options(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "kafka").mkdir(parents=True)
    (lib / "kafka" / "kafka_2.13-4.1.1.jar").write_text("")
    broker = services(StackPaths(tmp_path, lib))[0]
    assert isinstance(broker, KafkaBroker)
    conf = tmp_path / "conf" / "kafka-1"
    jvm = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:ParallelGCThreads=1"]
    server = broker.command()
    assert server[2:6] == jvm  # after the class-archive option
    assert server[-3:] == [f"{lib / 'kafka'}/*", "kafka.Kafka", str(conf / "server.properties")]
    tool = broker._java_args("kafka.tools.StorageTool", ["format"])
    assert tool[1:5] == jvm
    assert tool[-3:] == [f"{lib / 'kafka'}/*", "kafka.tools.StorageTool", "format"]

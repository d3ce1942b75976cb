"""The settings the agent process is handed: every value as validated, secrets hidden."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from hoststream.config import Settings, load_settings
from hoststream.producers.handover import SettingsSnapshot, from_snapshot, snapshot_of


def test_every_setting_arrives_with_its_value_and_type(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("HOSTSTREAM_HOST_LABELS", '{"role": "db"}')
    monkeypatch.setenv("HOSTSTREAM_TLS_CA_FILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("HOSTSTREAM_STREAM_WINDOWS", "10s,1m")
    settings = load_settings()

    handed = from_snapshot(snapshot_of(settings))

    for name in Settings.model_fields:
        value, arrived = getattr(settings, name), getattr(handed, name)
        if isinstance(value, SecretStr):
            assert arrived.get_secret_value() == value.get_secret_value(), name
            assert value.get_secret_value() not in repr(arrived)
        else:
            assert arrived == value, name
            assert type(arrived) is type(value) or isinstance(arrived, Path), name
    assert handed.kafka_sasl_password.get_secret_value() == "hunter2"
    assert handed.yaml_values == {}


def test_the_yaml_file_the_settings_came_from_is_handed_over_too(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("s3cret\n")
    config = tmp_path / "agent.yaml"
    config.write_text(f"kafka_sasl_password_file: {secret}\n")

    handed = from_snapshot(snapshot_of(load_settings(config)))

    assert handed.yaml_values == {"kafka_sasl_password_file": str(secret)}
    assert handed.kafka_sasl_password.get_secret_value() == "s3cret"


def test_handed_settings_are_frozen() -> None:
    handed = from_snapshot(snapshot_of(Settings()))
    assert isinstance(handed, SettingsSnapshot)
    with pytest.raises(AttributeError, match="frozen"):
        handed.topic_prefix = "other."  # type: ignore[misc]


# A fresh interpreter: what the agent process imports, after the handover's set-up.
_AGENT_IMPORTS = """
import sys
from hoststream.producers.handover import without_serializing_clients, without_unused_codecs
without_unused_codecs()
without_serializing_clients()
import hoststream.producers.app, hoststream.runtime
import confluent_kafka
from hoststream.schemas import MetricEvent, SingleObjectAvroSerializer
from hoststream.schemas.records import Sample
event = MetricEvent("h", "system", 1_700_000_000_000, (Sample("node_load1", 0.5),), seq=0)
print(len(SingleObjectAvroSerializer(MetricEvent)(event)))
confluent_kafka.Producer({"bootstrap.servers": "127.0.0.1:1"})
print(sorted(m for m in ("asyncio", "cramjam", "lz4") if sys.modules.get(m) is not None))
assert not hasattr(sys.modules["confluent_kafka._serde_builder"], "__path__")
try:
    confluent_kafka.SerializingProducer({"bootstrap.servers": "127.0.0.1:1"})
except RuntimeError as exc:
    print(exc)
"""


def test_the_agent_process_encodes_and_produces_without_asyncio_or_container_codecs() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _AGENT_IMPORTS],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    size, loaded, refusal = done.stdout.splitlines()
    assert int(size) > 10  # an Avro single object, fastavro working without its codecs
    assert loaded == "[]"
    assert "not loaded in the agent process" in refusal

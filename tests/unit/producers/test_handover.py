"""The settings the agent process is handed: every value as validated, secrets hidden."""

from __future__ import annotations

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

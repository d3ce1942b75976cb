"""Configuration: sources, precedence and errors that name the setting."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from hoststream.config import load_settings
from hoststream.errors import ConfigurationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HOSTSTREAM_"):
            monkeypatch.delenv(key)


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.schema_registry_url is None
    assert settings.otlp_endpoint is None
    assert settings.topic_prefix == ""
    assert settings.topic("metrics.cpu") == "metrics.cpu"


def test_environment_wins_over_yaml(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hoststream.yaml"
    config.write_text(
        "kafka_bootstrap: 10.0.0.1:9092\ntopic_prefix: prod.\nhost_labels: {region: eu}\n"
    )
    monkeypatch.setenv("HOSTSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    settings = load_settings(config)
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.topic_prefix == "prod."
    assert settings.host_labels == {"region": "eu"}
    assert settings.topic("alerts") == "prod.alerts"


def test_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTSTREAM_KAFKA_BOOTSTRAP", "no-port-here")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert error.value.setting == "HOSTSTREAM_KAFKA_BOOTSTRAP"


def test_unknown_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTSTREAM_KAFKA_BOOTSTRAPS", "127.0.0.1:9092")
    with pytest.raises(ConfigurationError, match="HOSTSTREAM_KAFKA_BOOTSTRAPS"):
        load_settings()


def test_unknown_yaml_key_is_refused(tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("vm_ur1: http://x\n")
    with pytest.raises(ConfigurationError, match="vm_ur1"):
        load_settings(config)


def test_secrets_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("HOSTSTREAM_SQL_DSN", "postgresql://u:topsecret@db/x")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert "topsecret" not in repr(settings)


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.kafka_bootstrap = "x:1"  # type: ignore[misc]


def test_collector_filter_must_be_a_regex(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTSTREAM_COLLECT_DISK_DEVICE_EXCLUDE", "^(loop")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert error.value.setting == "HOSTSTREAM_COLLECT_DISK_DEVICE_EXCLUDE"

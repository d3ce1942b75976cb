"""Configuration: sources, precedence and errors that name the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from hoststream.config import SECTIONS, Settings, load_settings, settings_table
from hoststream.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[3]


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


def test_every_setting_is_in_exactly_one_section() -> None:
    names = [name for section in SECTIONS for name in section.model_fields]
    assert len(names) == len(set(names))
    assert set(names) == set(Settings.model_fields)
    assert all(row.description for row in settings_table())


def test_stream_options_come_from_the_environment_and_the_file(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("stream_windows: [5m, 10s]\nstream_grace_s: 2\nstream_alerts: false\n")
    monkeypatch.setenv("HOSTSTREAM_STREAM_FAMILIES", "cpu, memory")
    settings = load_settings(config, stream_grace_s=3.0)
    assert settings.stream_windows == ("10s", "5m")
    assert settings.stream_families == ("cpu", "memory")
    assert settings.stream_grace_s == 3.0  # the command line wins
    assert settings.stream_alerts is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HOSTSTREAM_STREAM_WINDOWS", "1m,7s"),
        ("HOSTSTREAM_STREAM_WINDOWS", "soon"),
        ("HOSTSTREAM_STREAM_FAMILIES", "cpu,gpu"),
        ("HOSTSTREAM_STREAM_GRACE_S", "-1"),
        ("HOSTSTREAM_STREAM_BATCH_SIZE", "0"),
        ("HOSTSTREAM_METRICS_PORT", "70000"),
    ],
)
def test_a_wrong_stream_option_names_its_setting(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert error.value.setting == variable


def test_a_wrong_command_line_option_exits_2_naming_the_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hoststream", "stream", "--windows", "1m,7s"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "configuration error: HOSTSTREAM_STREAM_WINDOWS: Value error, "
        "1m is not a multiple of the smallest window 7s"
    )

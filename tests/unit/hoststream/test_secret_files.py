"""Every secret setting may be given as a file: HOSTSTREAM_<NAME>_FILE (or <name>_file: in YAML)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hoststream.config import load_settings, secret_settings
from hoststream.errors import ConfigurationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HOSTSTREAM_"):
            monkeypatch.delenv(key)


def test_every_secret_setting_is_read_from_the_file_its_file_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = secret_settings()
    assert {"kafka_sasl_password", "sql_dsn", "api_secret", "schema_registry_password"} <= set(
        names
    )
    for name in names:
        path = tmp_path / name
        value = f"postgresql://u@h:5432/d?x={name}" if name == "sql_dsn" else f"v-{name}"
        path.write_text(value + "\n")  # the newline secret files usually end with is dropped
        monkeypatch.setenv(f"HOSTSTREAM_{name.upper()}_FILE", str(path))
    settings = load_settings()
    for name in names:
        secret = getattr(settings, name)
        assert secret is not None, name
        expected = f"postgresql://u@h:5432/d?x={name}" if name == "sql_dsn" else f"v-{name}"
        assert secret.get_secret_value() == expected
        assert expected not in repr(settings)


def test_a_secret_file_named_in_the_yaml_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file")
    config = tmp_path / "hoststream.yaml"
    config.write_text(f"kafka_sasl_password_file: {secret}\n")
    assert load_settings(config).kafka_sasl_password.get_secret_value() == "from-a-file"  # type: ignore[union-attr]


def test_an_unreadable_secret_file_names_the_file_variable_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOSTSTREAM_API_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.setting == "HOSTSTREAM_API_SECRET_FILE"
    assert str(tmp_path / "missing") in str(caught.value)


def test_a_secret_given_both_as_value_and_as_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text("one")
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_PASSWORD", "two")
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE", str(secret))
    with pytest.raises(ConfigurationError, match="either"):
        load_settings()


def test_file_variables_exist_only_for_secret_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTSTREAM_KAFKA_BOOTSTRAP_FILE", "/dev/null")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.setting == "HOSTSTREAM_KAFKA_BOOTSTRAP_FILE"

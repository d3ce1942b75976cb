"""A replaced Kafka password file reaches the librdkafka clients, and its value no log line.

The clients here are test doubles that record ``set_sasl_credentials``; one
test checks that confluent-kafka's real Producer and Consumer have it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from hoststream.config import Settings, load_settings
from hoststream.runtime import Runtime, run_component
from hoststream.secret_files import SecretFileWatch, kafka_password_file

OLD = "old-s3cret-value"
NEW = "new-s3cret-value"


class RecordingClient:
    """Records the credentials it is given (a test double of a librdkafka client)."""

    def __init__(self) -> None:
        self.credentials: list[tuple[str, str]] = []

    def set_sasl_credentials(self, username: str, password: str) -> None:
        self.credentials.append((username, password))


class FailingClient:
    """Refuses new credentials with an error quoting them (a test double)."""

    def set_sasl_credentials(self, username: str, password: str) -> None:
        raise RuntimeError(f"cannot use {password}")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HOSTSTREAM_"):
            monkeypatch.delenv(key)


@pytest.fixture
def password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kafka-password"
    path.write_text(OLD + "\n")
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_USERNAME", "producer")
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE", str(path))
    monkeypatch.setenv("HOSTSTREAM_METRICS_PORT", "0")
    return path


def rotate(path: Path, value: str) -> None:
    """Replace the file as secret-store agents do: a new file renamed over the old one."""
    staged = path.with_suffix(".new")
    staged.write_text(value + "\n")
    staged.replace(path)


def test_a_replaced_password_file_gives_every_registered_client_the_new_password(
    password_file: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOSTSTREAM_LOG_LEVEL", "DEBUG")
    first, second = RecordingClient(), RecordingClient()

    def body(runtime: Runtime) -> bool:
        runtime.follow_kafka_password(first)
        runtime.follow_kafka_password(second)
        assert runtime.kafka_password is not None
        unchanged = runtime.kafka_password.check()
        rotate(password_file, NEW)
        return not unchanged and runtime.kafka_password.check()

    assert run_component("producer", load_settings(), body)
    assert first.credentials == [("producer", NEW)]
    assert second.credentials == [("producer", NEW)]
    # The component's own log handlers write to stderr: the rotation is logged, naming the file.
    logged = "".join(capfd.readouterr())
    assert str(password_file) in logged
    assert NEW not in logged
    assert OLD not in logged


def test_a_file_rewritten_with_the_same_password_changes_nothing(password_file: Path) -> None:
    watch = SecretFileWatch("HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE", password_file)
    client = RecordingClient()
    watch.follow(client, "producer")
    rotate(password_file, OLD)
    assert not watch.check()
    assert client.credentials == []


def test_a_file_missing_mid_rotation_keeps_the_old_password_until_the_new_one_is_there(
    password_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watch = SecretFileWatch("HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE", password_file)
    client = RecordingClient()
    watch.follow(client, "producer")
    password_file.unlink()
    assert not watch.check()
    assert "HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE" in caplog.text
    rotate(password_file, NEW)
    assert watch.check()
    assert client.credentials == [("producer", NEW)]


def test_a_client_that_fails_neither_stops_the_others_nor_logs_the_password(
    password_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    watch = SecretFileWatch("HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE", password_file)
    client = RecordingClient()
    watch.follow(FailingClient(), "producer")
    watch.follow(client, "producer")
    rotate(password_file, NEW)
    assert watch.check()
    assert client.credentials == [("producer", NEW)]
    assert "RuntimeError" in caplog.text
    assert NEW not in caplog.text


def test_the_watch_thread_applies_a_rotation_and_stops(password_file: Path) -> None:
    watch = SecretFileWatch("HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE", password_file)
    applied = threading.Event()
    watch.on_change(lambda _: applied.set())
    stop = threading.Event()
    thread = watch.run(stop, interval_s=0.01)
    rotate(password_file, NEW)
    assert applied.wait(30)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


def test_only_a_password_file_librdkafka_can_change_is_watched(
    password_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kafka_password_file(load_settings()) == password_file
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    assert kafka_password_file(load_settings()) is None
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert kafka_password_file(load_settings()) is None
    monkeypatch.delenv("HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE")
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("HOSTSTREAM_KAFKA_SASL_PASSWORD", OLD)
    settings = load_settings()
    assert kafka_password_file(settings) is None
    assert run_component("producer", settings, lambda runtime: runtime.kafka_password) is None


def test_a_password_file_named_in_the_yaml_file_is_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text(OLD)
    config = tmp_path / "hoststream.yaml"
    config.write_text(
        "kafka_security_protocol: SASL_PLAINTEXT\nkafka_sasl_mechanism: SCRAM-SHA-512\n"
        f"kafka_sasl_username: producer\nkafka_sasl_password_file: {secret}\n"
    )
    assert kafka_password_file(load_settings(config)) == secret
    assert kafka_password_file(Settings()) is None


def test_confluent_kafka_clients_accept_new_credentials_without_a_broker() -> None:
    config = {
        "bootstrap.servers": "127.0.0.1:1",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "producer",
        "sasl.password": OLD,
    }
    producer = Producer(config)
    producer.set_sasl_credentials("producer", NEW)
    consumer = Consumer({**config, "group.id": "password-rotation"})
    try:
        consumer.set_sasl_credentials("producer", NEW)
    finally:
        consumer.close()

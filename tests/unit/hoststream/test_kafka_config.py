"""Kafka client configuration built from settings."""

from __future__ import annotations

import pytest

from hoststream.config import Settings
from hoststream.errors import ConfigurationError
from hoststream.kafka import client_config, consumer_config, producer_config


def test_producer_is_idempotent_and_compressed() -> None:
    config = producer_config(Settings())
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["compression.type"] == "zstd"


def test_consumer_never_commits_on_its_own() -> None:
    config = consumer_config(Settings(), "g")
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False


def test_sasl_needs_mechanism() -> None:
    with pytest.raises(ConfigurationError, match="HOSTSTREAM_KAFKA_SASL_MECHANISM"):
        client_config(Settings(kafka_security_protocol="SASL_SSL"))


def test_sasl_scram_carries_credentials() -> None:
    config = client_config(
        Settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="u",
            kafka_sasl_password="p",  # type: ignore[arg-type]
        )
    )
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "u"
    assert config["sasl.password"] == "p"


def test_missing_tls_file_names_the_setting(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="HOSTSTREAM_KAFKA_SSL_CA_LOCATION"):
        client_config(
            Settings(kafka_security_protocol="SSL", kafka_ssl_ca_location=tmp_path / "missing.pem")
        )


def test_consumers_see_new_topics_within_seconds() -> None:
    assert consumer_config(Settings(), "g")["topic.metadata.refresh.interval.ms"] <= 10_000


def test_a_consumer_with_a_full_queue_fetches_again_within_tens_of_milliseconds() -> None:
    # librdkafka's default (1 s) left a sink reading a backlog idle once it
    # had drained its full local queue.
    assert consumer_config(Settings(), "g")["fetch.queue.backoff.ms"] <= 50

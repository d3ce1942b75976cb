"""The stream processor's Kafka credentials: a rotated client certificate is read again."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from hoststream.certificates import create_authority, issue
from hoststream.config import Settings
from hoststream.streams._broker import broker_credentials, reload_client_certificate


def test_a_rotated_client_certificate_is_loaded_into_the_same_context(tmp_path: Path) -> None:
    authority = create_authority(tmp_path / "ca")
    first = issue(authority, "hoststream-stream", tmp_path / "first")
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="hoststream-stream",
        kafka_sasl_password=SecretStr("pw"),
        kafka_ssl_ca_location=authority.cert_file,
        kafka_ssl_certificate_location=first.cert_file,
        kafka_ssl_key_location=first.key_file,
    )
    credentials = broker_credentials(settings)
    context = credentials.ssl_context  # type: ignore[union-attr]
    second = issue(authority, "hoststream-stream", tmp_path / "second")
    first.cert_file.write_bytes(second.cert_file.read_bytes())
    first.key_file.write_bytes(second.key_file.read_bytes())
    assert reload_client_certificate(credentials, settings)
    assert credentials.ssl_context is context  # type: ignore[union-attr]
    # It really reads the files again: a half-written rotation is an error, not ignored.
    first.key_file.write_text("not a key")
    with pytest.raises(ssl.SSLError):
        reload_client_certificate(credentials, settings)


def test_without_a_client_certificate_there_is_nothing_to_reload() -> None:
    assert not reload_client_certificate(None, Settings())

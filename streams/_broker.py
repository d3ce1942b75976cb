"""Faust's broker URL and credentials from hoststream's Kafka settings."""

from __future__ import annotations

import ssl

import faust
from faust.types.auth import CredentialsT

from hoststream.config import Settings
from hoststream.errors import ConfigurationError

__all__ = ["broker_credentials", "broker_urls", "reload_client_certificate"]


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")]


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    cafile = settings.kafka_ssl_ca_location
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if settings.kafka_ssl_certificate_location is not None:
        password = settings.kafka_ssl_key_password
        context.load_cert_chain(
            str(settings.kafka_ssl_certificate_location),
            str(settings.kafka_ssl_key_location) if settings.kafka_ssl_key_location else None,
            password.get_secret_value() if password else None,
        )
    return context


def reload_client_certificate(credentials: CredentialsT | None, settings: Settings) -> bool:
    """Load the client certificate files again into the credentials' TLS context.

    aiokafka opens every new connection with this one context, so a rotated
    certificate is used from the next connection on. Returns False when there
    is no client certificate to reload.
    """
    context = getattr(credentials, "ssl_context", None)
    cert = settings.kafka_ssl_certificate_location
    if not isinstance(context, ssl.SSLContext) or cert is None:
        return False
    password = settings.kafka_ssl_key_password
    context.load_cert_chain(
        str(cert),
        str(settings.kafka_ssl_key_location) if settings.kafka_ssl_key_location else None,
        password.get_secret_value() if password else None,
    )
    return True


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """The credentials aiokafka needs, or None for PLAINTEXT.

    Raises:
        ConfigurationError: the settings ask for something Faust cannot do here
            (OAUTHBEARER needs a token provider hoststream does not configure).
    """
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(settings) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        assert context is not None
        return faust.SSLCredentials(context)
    mechanism = settings.kafka_sasl_mechanism
    if mechanism is None or mechanism == "OAUTHBEARER":
        raise ConfigurationError(
            "HOSTSTREAM_KAFKA_SASL_MECHANISM",
            "the stream processor needs PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            f" with {protocol}, got {mechanism}",
        )
    password = settings.kafka_sasl_password
    if not settings.kafka_sasl_username or password is None:
        raise ConfigurationError(
            "HOSTSTREAM_KAFKA_SASL_USERNAME", f"username and password are required for {mechanism}"
        )
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value(),
        ssl_context=context,
        mechanism=mechanism,
    )

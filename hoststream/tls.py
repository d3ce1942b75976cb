"""The certificate files a component's settings name, checked when it starts and while it runs.

:func:`watch_certificates` is called by the component runtime: every file is
checked once at start-up (an expired, unreadable or untrusted one stops the
component with one line naming the file), the Kafka broker's certificate is
checked against the configured CA, and a daemon thread re-checks them every
``HOSTSTREAM_CERTIFICATE_CHECK_INTERVAL_S``, exporting their expiry and
warning ``HOSTSTREAM_CERTIFICATE_WARNING_DAYS`` ahead.
"""

from __future__ import annotations

import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

if TYPE_CHECKING:
    # cryptography (several MiB resident) is loaded only by a component with
    # certificate files to watch.
    from hoststream.certificates import CertificateWatch
    from hoststream.config import Settings

__all__ = ["certificate_files", "client_ssl_context", "vm_auth", "watch_certificates"]


def _sql_files(settings: Settings) -> dict[str, tuple[Path, Path | None]]:
    dsn = settings.sql_dsn.get_secret_value()
    if "sslrootcert" not in dsn and "sslcert" not in dsn:
        # Every component checks its files, and psycopg is heavy: only a DSN
        # naming a certificate is parsed with it.
        return {}
    import psycopg.conninfo

    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return {}  # the sink or the API reports a malformed DSN with its own words
    files: dict[str, tuple[Path, Path | None]] = {}
    root = params.get("sslrootcert")
    if isinstance(root, str) and root and root != "system":
        files["HOSTSTREAM_SQL_DSN sslrootcert"] = (Path(root), None)
    cert = params.get("sslcert")
    if isinstance(cert, str) and cert:
        files["HOSTSTREAM_SQL_DSN sslcert"] = (Path(cert), None)
    return files


def certificate_files(settings: Settings) -> dict[str, tuple[Path, Path | None]]:
    """Setting name to (certificate file, CA it must be signed by) for every file set."""
    files: dict[str, tuple[Path, Path | None]] = {}
    kafka_ca = settings.kafka_ssl_ca_location
    if settings.kafka_security_protocol.endswith("SSL"):
        if kafka_ca is not None:
            files["HOSTSTREAM_KAFKA_SSL_CA_LOCATION"] = (kafka_ca, None)
        if settings.kafka_ssl_certificate_location is not None:
            files["HOSTSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION"] = (
                settings.kafka_ssl_certificate_location,
                None,
            )
    if settings.tls_ca_file is not None:
        files["HOSTSTREAM_TLS_CA_FILE"] = (settings.tls_ca_file, None)
    if settings.api_tls_cert_file is not None:
        files["HOSTSTREAM_API_TLS_CERT_FILE"] = (settings.api_tls_cert_file, None)
    files.update(_sql_files(settings))
    return files


def client_ssl_context(settings: Settings) -> ssl.SSLContext | bool:
    """What HTTPS clients of the services verify with: the configured CA, or the system's."""
    if settings.tls_ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(settings.tls_ca_file))


def vm_auth(settings: Settings) -> tuple[str, str] | None:
    """VictoriaMetrics' basic-auth pair, or None when no user name is set."""
    if settings.vm_username is None:
        return None
    password = settings.vm_password.get_secret_value() if settings.vm_password else ""
    return (settings.vm_username, password)


def watch_certificates(
    settings: Settings, registry: CollectorRegistry, stop: threading.Event
) -> CertificateWatch | None:
    """Check the component's certificate files now and keep watching them; None if it has none.

    Raises:
        CertificateError: a file is expired, not yet valid, unreadable, or the
            broker's certificate is not signed by the configured CA.
    """
    files = certificate_files(settings)
    if not files:
        return None
    from hoststream.certificates import CertificateWatch, probe_server

    watch = CertificateWatch(files, registry, settings.certificate_warning_days)
    watch.check()
    if settings.kafka_security_protocol.endswith("SSL") and settings.kafka_ssl_ca_location:
        first = settings.kafka_bootstrap.split(",")[0].strip()
        probe_server(first, settings.kafka_ssl_ca_location, "HOSTSTREAM_KAFKA_SSL_CA_LOCATION")
    watch.run(stop, settings.certificate_check_interval_s)
    return watch

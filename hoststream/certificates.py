"""Certificates: a local certificate authority, the certificates it issues, and their checks.

``hoststream stack up --secure`` makes one CA (:func:`create_authority`) and
issues each service a server certificate and each component a client
certificate (:func:`issue`). Every component checks the certificate files its
settings name when it starts (:func:`check_certificate`: an expired, not yet
valid, unreadable or untrusted file is one line naming the file), exports their
expiry as ``hoststream_certificate_expiry_timestamp_seconds`` and logs a
warning ahead of it (:class:`CertificateWatch`), re-reading a file that was
replaced (rotation).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client import CollectorRegistry, Gauge

from hoststream.errors import CertificateError

__all__ = [
    "Authority",
    "CertificateWatch",
    "IssuedCertificate",
    "check_certificate",
    "create_authority",
    "issue",
    "load_authority",
    "probe_server",
]

log = logging.getLogger(__name__)

#: Long enough for a local stack, short enough that expiry handling is real.
DEFAULT_VALIDITY_DAYS = 397
CA_VALIDITY_DAYS = 3650
_KEY_BITS = 2048


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its certificate file and the key that signs with it."""

    cert_file: Path
    key_file: Path

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_file.read_bytes())

    def private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and its private key (PKCS#8 PEM, unencrypted, mode 0600)."""

    cert_file: Path
    key_file: Path


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    path.chmod(0o600)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    # PKCS#8: the one PEM key form Kafka's PEM key stores, PostgreSQL and Python all read.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_authority(directory: Path, name: str = "hoststream local CA") -> Authority:
    """Create a CA in ``directory`` (``ca.pem``, ``ca-key.pem``), or return the one there."""
    authority = Authority(directory / "ca.pem", directory / "ca-key.pem")
    if authority.cert_file.exists() and authority.key_file.exists():
        return authority
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(authority.key_file, _key_pem(key))
    authority.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return authority


def load_authority(cert_file: Path, key_file: Path) -> Authority:
    """A CA of your own (bring your own CA): checked to be readable and a CA."""
    cert = _load(cert_file)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateError(f"certificate {cert_file} is not a certificate authority")
    return Authority(cert_file, key_file)


def issue(
    authority: Authority,
    common_name: str,
    directory: Path,
    *,
    hosts: Iterable[str] = ("127.0.0.1", "localhost"),
    days: int = DEFAULT_VALIDITY_DAYS,
    not_before: dt.datetime | None = None,
) -> IssuedCertificate:
    """Issue ``<directory>/<common_name>.pem`` and ``-key.pem``, for server and client use.

    Args:
        authority: the CA that signs.
        common_name: the subject's CN, which a broker maps to its principal.
        directory: where both files go.
        hosts: names and addresses the certificate is valid for (subject
            alternative names, checked by clients that verify the host).
        days: validity from ``not_before``.
        not_before: start of validity; default now (tests issue expired ones).
    """
    key = _new_key()
    ca_cert = authority.certificate()
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(authority.private_key(), hashes.SHA256())
    )
    issued = IssuedCertificate(
        directory / f"{common_name}.pem", directory / f"{common_name}-key.pem"
    )
    _write_private(issued.key_file, _key_pem(key))
    issued.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


def _load(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read certificate {path}: {exc.strerror}") from exc
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"{path} is not a PEM certificate") from exc


def check_certificate(
    path: Path, authority: Path | None = None, now: dt.datetime | None = None
) -> dt.datetime:
    """Check one certificate file; return when it expires.

    Args:
        path: the certificate (its first PEM block is checked).
        authority: the CA file it must be signed by; None: not checked.
        now: the time to check against (default: now).

    Raises:
        CertificateError: one line naming the file: unreadable, not PEM,
            expired, not yet valid, or not signed by ``authority``.
    """
    cert = _load(path)
    moment = now or dt.datetime.now(dt.UTC)
    expires = cert.not_valid_after_utc
    if moment >= expires:
        raise CertificateError(
            f"certificate {path} expired on {expires:%Y-%m-%d %H:%M} UTC; renew it"
        )
    if moment < cert.not_valid_before_utc:
        raise CertificateError(
            f"certificate {path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if authority is not None and authority != path:
        ca = _load(authority)
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateError(
                f"certificate {path} is not signed by the CA in {authority} (untrusted)"
            ) from exc
    return expires


class CertificateWatch:
    """Exports the expiry of certificate files and warns ahead of it; notices rotation.

    Args:
        files: setting name to certificate file, and the CA each must be signed by.
        registry: where ``hoststream_certificate_expiry_timestamp_seconds{file}`` goes.
        warning_days: log a warning when a certificate expires within this many days.
        on_rotation: called with the setting name when a file changed on disk.
    """

    def __init__(
        self,
        files: dict[str, tuple[Path, Path | None]],
        registry: CollectorRegistry,
        warning_days: int = 30,
        on_rotation: Callable[[str], None] | None = None,
    ) -> None:
        self.files = files
        self.warning_days = warning_days
        self._rotation_callbacks = [on_rotation] if on_rotation is not None else []
        self._stamps: dict[str, float] = {}
        self._expiry = Gauge(
            "hoststream_certificate_expiry_timestamp_seconds",
            "When each certificate file this component uses expires, Unix seconds.",
            ["setting", "file"],
            registry=registry,
        )

    def check(self, now: dt.datetime | None = None) -> None:
        """Check every file now; raises :class:`CertificateError` for the first bad one."""
        moment = now or dt.datetime.now(dt.UTC)
        for setting, (path, authority) in self.files.items():
            try:
                stamp = path.stat().st_mtime
            except OSError as exc:
                raise CertificateError(
                    f"cannot read certificate {path} ({setting}): {exc.strerror}"
                ) from exc
            rotated = setting in self._stamps and self._stamps[setting] != stamp
            expires = check_certificate(path, authority, moment)
            self._stamps[setting] = stamp
            self._expiry.labels(setting, str(path)).set(expires.timestamp())
            left = expires - moment
            if left < dt.timedelta(days=self.warning_days):
                log.warning(
                    "certificate %s (%s) expires on %s UTC, in %d days; renew it",
                    path,
                    setting,
                    f"{expires:%Y-%m-%d %H:%M}",
                    left.days,
                )
            if rotated:
                log.info("certificate %s (%s) was replaced", path, setting)
                for callback in self._rotation_callbacks:
                    callback(setting)

    def on_rotation(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` with the setting's name when one of the files is replaced."""
        self._rotation_callbacks.append(callback)

    def run(self, stop: threading.Event, interval_s: float) -> threading.Thread:
        """Check every ``interval_s`` in a daemon thread until ``stop`` is set."""

        def loop() -> None:
            while not stop.wait(interval_s):
                try:
                    self.check()
                except CertificateError as exc:
                    # Connections already open keep working; new ones will fail.
                    log.error("%s", exc)

        thread = threading.Thread(target=loop, name="certificate-watch", daemon=True)
        thread.start()
        return thread


def probe_server(address: str, authority: Path, setting: str, timeout_s: float = 5.0) -> None:
    """Check that the TLS server at ``host:port`` has a certificate ``authority`` signed.

    A component calls it once at start-up, so that a server certificate its CA
    does not trust is one line naming the CA file, not a client library's
    retry loop. A server that does not answer is left to the client's own
    retries.

    Raises:
        CertificateError: the server's certificate is not trusted.
    """
    host, _, port = address.rpartition(":")
    context = ssl.create_default_context(cafile=str(authority))
    try:
        with (
            socket.create_connection((host, int(port)), timeout=timeout_s) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(
            f"the certificate of {address} is not trusted by the CA in {authority} "
            f"({setting}): {exc.verify_message}"
        ) from exc
    except (OSError, ssl.SSLError):
        return

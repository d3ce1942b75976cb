"""Certificates: issued by a local CA, checked for expiry and trust, errors naming the file."""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hoststream.certificates import (
    CertificateWatch,
    check_certificate,
    create_authority,
    issue,
    load_authority,
)
from hoststream.errors import CertificateError


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return create_authority(tmp_path_factory.mktemp("ca"))


def test_an_issued_certificate_and_key_load_into_a_python_tls_context(
    authority, tmp_path: Path
) -> None:
    issued = issue(authority, "hoststream-producer", tmp_path)
    context = ssl.create_default_context(cafile=str(authority.cert_file))
    context.load_cert_chain(str(issued.cert_file), str(issued.key_file))
    assert issued.key_file.stat().st_mode & 0o777 == 0o600
    assert check_certificate(issued.cert_file, authority.cert_file) > dt.datetime.now(dt.UTC)


def test_creating_the_authority_twice_keeps_the_first(authority) -> None:
    before = authority.cert_file.read_bytes()
    again = create_authority(authority.cert_file.parent)
    assert again.cert_file.read_bytes() == before


def test_an_expired_certificate_is_one_line_naming_the_file(authority, tmp_path: Path) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    issued = issue(authority, "old", tmp_path, days=2, not_before=start)
    with pytest.raises(CertificateError) as caught:
        check_certificate(issued.cert_file)
    message = str(caught.value)
    assert "\n" not in message
    assert str(issued.cert_file) in message
    assert "expired" in message


def test_a_certificate_of_another_authority_is_untrusted(authority, tmp_path: Path) -> None:
    other = create_authority(tmp_path / "other", "someone else's CA")
    issued = issue(other, "stranger", tmp_path)
    with pytest.raises(CertificateError, match="not signed by the CA") as caught:
        check_certificate(issued.cert_file, authority.cert_file)
    assert str(issued.cert_file) in str(caught.value)


def test_a_file_that_is_not_a_certificate_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("hello")
    with pytest.raises(CertificateError, match=str(bogus)):
        check_certificate(bogus)


def test_a_leaf_certificate_is_not_accepted_as_your_own_ca(authority, tmp_path: Path) -> None:
    issued = issue(authority, "leaf", tmp_path)
    with pytest.raises(CertificateError, match="not a certificate authority"):
        load_authority(issued.cert_file, issued.key_file)
    assert load_authority(authority.cert_file, authority.key_file) == authority


def test_the_watch_exports_expiry_and_warns_within_the_warning_days(
    authority, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    soon = issue(authority, "soon", tmp_path, days=20)
    later = issue(authority, "later", tmp_path, days=200)
    registry = CollectorRegistry()
    watch = CertificateWatch(
        {"SOON": (soon.cert_file, None), "LATER": (later.cert_file, authority.cert_file)},
        registry,
        warning_days=30,
    )
    with caplog.at_level(logging.WARNING, logger="hoststream.certificates"):
        watch.check()
    expiry = registry.get_sample_value(
        "hoststream_certificate_expiry_timestamp_seconds",
        {"setting": "LATER", "file": str(later.cert_file)},
    )
    assert expiry is not None
    assert expiry == pytest.approx(check_certificate(later.cert_file).timestamp())
    warned = [r.getMessage() for r in caplog.records]
    assert any(str(soon.cert_file) in line and "renew" in line for line in warned)
    assert not any(str(later.cert_file) in line for line in warned)


def test_the_watch_notices_a_replaced_certificate(authority, tmp_path: Path) -> None:
    first = issue(authority, "rotating", tmp_path / "a")
    rotated: list[str] = []
    watch = CertificateWatch(
        {"CERT": (first.cert_file, None)}, CollectorRegistry(), on_rotation=rotated.append
    )
    watch.check()
    replacement = issue(authority, "rotating", tmp_path / "b", days=100)
    first.cert_file.write_bytes(replacement.cert_file.read_bytes())

    os.utime(first.cert_file, (1, 1))  # a different stamp even on a coarse clock
    watch.check()
    assert rotated == ["CERT"]
    stop = threading.Event()
    stop.set()
    watch.run(stop, 0.01).join(1)

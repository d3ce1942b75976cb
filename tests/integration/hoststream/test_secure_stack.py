"""The secure stack enforces least privilege and refuses plaintext: each refusal is a clear error.

Runs against ``hoststream stack up --secure`` (tests/support/secure.py), beside
the plaintext stack.
"""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from hoststream.certificates import create_authority, issue
from hoststream.errors import KafkaAccessError
from hoststream.kafka import TopicSpec, client_config, consumer_config, ensure_topics
from hoststream.sinks.sql import SqlSink
from tests.support.secure import SecureStack


def poll_error(consumer: Consumer, limit_s: float = 30.0) -> KafkaError:
    """The first error the consumer reports; fails the test if none comes within ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is not None:
            return message.error()
    pytest.fail(f"no error within {limit_s:.0f}s: the refusal hangs")


def test_the_producer_principal_may_not_read_a_metric_topic(
    secure_stack: SecureStack, unique: str
) -> None:
    settings = secure_stack.settings("producer")
    consumer = Consumer(consumer_config(settings, f"hoststream-sink-sql{unique}"))
    consumer.subscribe(["metrics.cpu"])
    try:
        error = poll_error(consumer)
    finally:
        consumer.close()
    assert error.code() in {
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    }


def test_a_sink_principal_may_not_write_a_metric_topic(secure_stack: SecureStack) -> None:
    ensure_topics(secure_stack.settings(), [TopicSpec("metrics.cpu", 1, 1)])
    settings = secure_stack.settings("sink-alerts")
    producer = Producer({**client_config(settings), "message.timeout.ms": 20_000})
    errors: list[KafkaError] = []
    producer.produce("metrics.cpu", b"x", on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def test_a_principal_without_the_right_gets_one_line_naming_it_when_creating_a_topic(
    secure_stack: SecureStack,
) -> None:
    settings = secure_stack.settings("api")
    with pytest.raises(KafkaAccessError) as caught:
        ensure_topics(settings, [TopicSpec("metrics.cpu.extra", 1, 1)])
    message = str(caught.value)
    assert "hoststream-api" in message
    assert "metrics.cpu.extra" in message
    assert "\n" not in message


def test_a_sink_without_the_right_to_its_group_exits_1_with_one_line(
    secure_stack: SecureStack,
) -> None:
    # The producer's principal runs the alerts sink: it may not read `alerts`.
    env = {
        **secure_stack.process_env("producer"),
        "HOSTSTREAM_ALERTMANAGER_URL": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", "hoststream", "sink", "alerts"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("error: Kafka refused sink alerts")
    assert "AUTHORIZATION_FAILED" in errors[0]


def test_the_api_role_can_read_but_not_write_the_tables(secure_stack: SecureStack) -> None:
    sink_dsn = secure_stack.settings("sink-sql").sql_dsn.get_secret_value()
    sink = SqlSink(sink_dsn)
    try:
        sink.migrate()
    finally:
        sink.close()
    api_dsn = secure_stack.settings("api").sql_dsn.get_secret_value()
    with psycopg.connect(api_dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM window_aggregates").fetchone() is not None
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("DELETE FROM window_aggregates")
    with (
        psycopg.connect(api_dsn, connect_timeout=5) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CREATE TABLE api_was_here (x int)")


def test_a_wrong_kafka_password_is_refused(secure_stack: SecureStack) -> None:
    settings = secure_stack.settings("producer")
    config = {**client_config(settings), "sasl.password": "not-the-password", "log_level": 0}
    with pytest.raises(KafkaException):
        AdminClient(config).list_topics(timeout=10)


def test_a_plaintext_client_is_refused_by_every_secured_service(
    secure_stack: SecureStack,
) -> None:
    env = secure_stack.env()
    kafka = env["HOSTSTREAM_KAFKA_BOOTSTRAP"]
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": kafka, "log_level": 0}).list_topics(timeout=10)
    # SASL without TLS is refused too.
    settings = secure_stack.settings("producer")
    sasl_plaintext = {**client_config(settings), "log_level": 0}
    sasl_plaintext["security.protocol"] = "SASL_PLAINTEXT"
    with pytest.raises(KafkaException):
        AdminClient(sasl_plaintext).list_topics(timeout=10)

    api_dsn = secure_stack.settings("api").sql_dsn.get_secret_value()
    plain_dsn = api_dsn.replace("sslmode=verify-full", "sslmode=disable")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(plain_dsn, connect_timeout=5)

    for url in (env["HOSTSTREAM_VM_URL"], env["HOSTSTREAM_SCHEMA_REGISTRY_URL"]):
        plain = url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(plain, timeout=5).raise_for_status()
        # Over TLS but without the stack's CA: the certificate is untrusted.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url, timeout=5)


def test_victoriametrics_wants_its_password(secure_stack: SecureStack) -> None:
    env = secure_stack.env()
    context = ssl.create_default_context(cafile=env["HOSTSTREAM_TLS_CA_FILE"])
    query = f"{env['HOSTSTREAM_VM_URL']}/api/v1/query"
    response = httpx.get(query, params={"query": "1"}, verify=context, timeout=5)
    assert response.status_code == 401
    settings = secure_stack.settings("sink-victoriametrics")
    assert settings.vm_password is not None
    authorised = httpx.get(
        query,
        params={"query": "1"},
        verify=context,
        auth=(settings.vm_username or "", settings.vm_password.get_secret_value()),
        timeout=5,
    )
    assert authorised.status_code == 200


def run_producer(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hoststream", "produce", "--duration", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_broker_certificate_the_configured_ca_did_not_sign_is_one_line_naming_the_ca(
    secure_stack: SecureStack, tmp_path: Path
) -> None:
    other = create_authority(tmp_path / "other", "someone else's CA")
    env = secure_stack.process_env(
        "producer", HOSTSTREAM_KAFKA_SSL_CA_LOCATION=str(other.cert_file)
    )
    result = run_producer(env)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "not trusted by the CA in " + str(other.cert_file) in errors[0]


def test_an_expired_client_certificate_is_one_line_naming_the_file(
    secure_stack: SecureStack, tmp_path: Path
) -> None:
    assert secure_stack.stack.security is not None
    expired = issue(
        secure_stack.stack.security.authority,
        "hoststream-producer",
        tmp_path,
        days=1,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=3),
    )
    env = secure_stack.process_env(
        "producer",
        HOSTSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION=str(expired.cert_file),
        HOSTSTREAM_KAFKA_SSL_KEY_LOCATION=str(expired.key_file),
    )
    result = run_producer(env)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith(f"error: certificate {expired.cert_file} expired on ")

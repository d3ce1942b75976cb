"""The producer's plain-HTTP registry client, against a local HTTP double of a registry.

The double (a stdlib HTTP server on loopback) answers as a Confluent-compatible
registry would; the real registry is in tests/integration/schemas/test_registry.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from hoststream.config import Settings
from hoststream.errors import ConfigurationError, SerializationError
from hoststream.schemas import (
    MetricEvent,
    SchemaRegistryUnavailableError,
    SingleObjectAvroSerializer,
    codec_for,
    schema_for,
    serializer_for,
)
from tests.support.records import metric_event


class RegistryDouble(BaseHTTPRequestHandler):
    """Answers POSTs with ``status`` and ``answer``, and keeps what it was sent (a test double)."""

    status = 200
    answer: ClassVar[Any] = {"id": 42}
    requests: ClassVar[list[tuple[str, dict[str, str], Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, dict(self.headers), body))
        payload = json.dumps(self.answer).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    RegistryDouble.status, RegistryDouble.answer, RegistryDouble.requests = 200, {"id": 42}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RegistryDouble)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/apis/ccompat/v7"
    server.shutdown()
    server.server_close()


def ctx_for(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def test_the_value_carries_the_id_the_registry_gave_and_the_same_body(registry_url: str) -> None:
    settings = Settings(schema_registry_url=registry_url)
    event = metric_event()
    value = serializer_for(settings, MetricEvent)(event, ctx_for("metrics.cpu"))
    assert value[:5] == b"\x00" + (42).to_bytes(4, "big")
    body = SingleObjectAvroSerializer(MetricEvent)(event)[10:]
    assert value[5:] == body
    path, headers, sent = RegistryDouble.requests[0]
    assert path == "/apis/ccompat/v7/subjects/metrics.cpu-value/versions"
    assert sent == {"schema": schema_for(MetricEvent).text}
    assert "Authorization" not in headers


def test_the_schema_id_is_asked_once_per_subject(registry_url: str) -> None:
    serializer = serializer_for(Settings(schema_registry_url=registry_url), MetricEvent)
    for topic in ("metrics.cpu", "metrics.cpu", "metrics.disk"):
        serializer(metric_event(), ctx_for(topic))
    assert [path.rsplit("/", 2)[1] for path, _, _ in RegistryDouble.requests] == [
        "metrics.cpu-value",
        "metrics.disk-value",
    ]


def test_credentials_go_as_basic_authentication(registry_url: str) -> None:
    settings = Settings(
        schema_registry_url=registry_url,
        schema_registry_username="agent",
        schema_registry_password="s3cret",
    )
    serializer_for(settings, MetricEvent)(metric_event(), ctx_for("metrics.cpu"))
    assert RegistryDouble.requests[0][1]["Authorization"] == "Basic YWdlbnQ6czNjcmV0"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ConfigurationError),
        (422, SerializationError),
        (500, SchemaRegistryUnavailableError),
        (429, SchemaRegistryUnavailableError),
    ],
)
def test_a_refusal_is_sorted_by_what_to_do_about_it(
    registry_url: str, status: int, error: type[Exception]
) -> None:
    RegistryDouble.status = status
    RegistryDouble.answer = {"error_code": status, "message": "no"}
    serializer = serializer_for(Settings(schema_registry_url=registry_url), MetricEvent)
    with pytest.raises(error):
        serializer(metric_event(), ctx_for("metrics.cpu"))


def test_a_registry_that_does_not_answer_is_unavailable() -> None:
    serializer = serializer_for(Settings(schema_registry_url="http://127.0.0.1:9/x"), MetricEvent)
    with pytest.raises(SchemaRegistryUnavailableError, match="did not answer"):
        serializer(metric_event(), ctx_for("metrics.cpu"))


def test_a_url_that_is_not_http_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="HOSTSTREAM_SCHEMA_REGISTRY_URL"):
        serializer_for(Settings(schema_registry_url="ftp://registry"), MetricEvent)


def test_without_a_registry_the_producer_writes_single_object_encoding() -> None:
    settings = Settings(schema_registry_url=None)
    event = metric_event()
    assert serializer_for(settings, MetricEvent)(event) == codec_for(
        settings, MetricEvent
    ).serializer(event)

"""The registry ids of writer schemas, asked over plain HTTP: all a producer needs.

A producer asks the registry one thing: the id of its writer schema under each
subject, once. confluent-kafka's registry client answers that too, but brings
two HTTP stacks, authlib and cryptography (about 20 MiB resident), which would
double the agent's memory. :class:`SchemaIdClient` asks the same
Confluent-compatible endpoints with the standard library, so the values keep
the Confluent wire format with the id the registry gave.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hoststream.errors import ConfigurationError

__all__ = ["RegistryHttpError", "SchemaIdClient"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryHttpError(Exception):
    """The registry answered with an HTTP error; shaped like confluent-kafka's."""

    def __init__(self, http_status_code: int, error_message: str) -> None:
        self.http_status_code = http_status_code
        self.error_message = error_message
        super().__init__(f"HTTP {http_status_code}: {error_message}")


@dataclass(frozen=True, slots=True)
class SchemaIdClient:
    """Registers or looks up an Avro schema under a subject and returns its id.

    Args:
        url: the registry's Confluent-compatible base URL (``http`` or ``https``).
        username, password: HTTP basic authentication (both or neither).
        ca_file: the CA certificate an ``https`` registry is checked against
            (default: the system's).
        timeout_s: how long one request may take; a registry that stops
            answering raises instead of hanging the producer.

    Raises:
        ConfigurationError: the URL is not an http(s) URL.
    """

    url: str
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigurationError(
                "HOSTSTREAM_SCHEMA_REGISTRY_URL", f"expected an http(s) URL, got {self.url!r}"
            )

    def register(self, subject: str, schema_text: str) -> int:
        """The id of ``schema_text`` under ``subject``, registering it if it is new there."""
        return self._schema_id(f"/subjects/{_quote(subject)}/versions", schema_text)

    def lookup(self, subject: str, schema_text: str) -> int:
        """The id of ``schema_text`` under ``subject``; RegistryHttpError 404 if absent."""
        return self._schema_id(f"/subjects/{_quote(subject)}", schema_text)

    def _schema_id(self, path: str, schema_text: str) -> int:
        answer = self._post(path, {"schema": schema_text})
        schema_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(schema_id, int):
            raise RegistryHttpError(502, f"the answer to {path} holds no schema id: {answer!r}")
        return schema_id

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        # The scheme is http or https: checked in __post_init__.
        request = urllib.request.Request(  # noqa: S310
            self.url.rstrip("/") + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": _CONTENT_TYPE, "Accept": _CONTENT_TYPE},
            method="POST",
        )
        if self.username is not None and self.password is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = None
        if self.url.startswith("https:"):
            import ssl  # only for an https registry: ssl is a few MiB resident

            context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout_s, context=context
            ) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise RegistryHttpError(exc.code, _error_message(exc)) from exc


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _error_message(exc: urllib.error.HTTPError) -> str:
    # Confluent-compatible registries answer {"error_code": ..., "message": ...}.
    try:
        answer = json.loads(exc.read())
    except (OSError, ValueError):
        return str(exc.reason)
    if isinstance(answer, dict) and isinstance(answer.get("message"), str):
        return str(answer["message"])
    return str(exc.reason)

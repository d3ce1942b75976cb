"""The API as a real process (`hoststream api`) against the stack's services (a pytest plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import yaml
from pydantic import SecretStr

from hoststream.api.auth import issue_jwt, new_api_key
from hoststream.config import Settings
from tests.support.processes import free_port

SECRET = "integration-test-secret-" + "x" * 32


@dataclass
class RunningApi:
    url: str
    settings: Settings
    limited_key: str

    def token(self, scopes: list[str] | None = None, ttl_s: int = 600) -> str:
        scopes = ["read:metrics", "read:alerts"] if scopes is None else scopes
        return issue_jwt(SecretStr(SECRET), "tests", scopes, ttl_s)

    def get(self, path: str, token: str | None = "default", **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token == "default":
            token = self.token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=30, **kwargs)


@contextmanager
def running_api(
    services: Settings, tmp_path_factory, overrides: dict[str, str] | None = None
) -> Iterator[RunningApi]:
    """``hoststream api`` as a child process; ready once its health check answers at all."""
    prefix = f"api{os.getpid()}{int(time.time())}."
    key, entry = new_api_key(["read:metrics"])
    keys_file = tmp_path_factory.mktemp("api") / "keys.yaml"
    keys_file.write_text(yaml.safe_dump([{**entry, "rate_limit_per_minute": 3}]))
    port = free_port()
    env = {
        **os.environ,
        "HOSTSTREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "HOSTSTREAM_SCHEMA_REGISTRY_URL": services.schema_registry_url or "",
        "HOSTSTREAM_VM_URL": services.vm_url,
        "HOSTSTREAM_SQL_DSN": services.sql_dsn.get_secret_value(),
        "HOSTSTREAM_TOPIC_PREFIX": prefix,
        "HOSTSTREAM_API_SECRET": SECRET,
        "HOSTSTREAM_API_KEYS_FILE": str(keys_file),
        "HOSTSTREAM_API_CORS_ORIGINS": '["https://dash.example"]',
        **(overrides or {}),
    }
    log = tmp_path_factory.mktemp("api-log") / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hoststream", "api", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    # Without overrides every dependency must be up (200); with them, any answer will do.
    ready = {200} if not overrides else {200, 503}
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=5).status_code in ready:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)
    try:
        yield RunningApi(url, services.model_copy(update={"topic_prefix": prefix}), key)
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture(scope="module")
def api_server(services: Settings, tmp_path_factory) -> Iterator[RunningApi]:
    with running_api(services, tmp_path_factory) as api:
        yield api

"""Jaeger v2 (``cmd/jaeger``, built by ``deploy/local/build-jaeger.sh``): the stack's trace store.

It receives OTLP as Tempo would, keeps traces in memory, and answers queries
on the HTTP API its UI uses (``/api/services``, ``/api/traces``), which the
tests read. Jaeger v2 is an OpenTelemetry Collector: it is configured by one
YAML file, written here with every listener on 127.0.0.1 (its built-in
all-in-one configuration listens on all addresses and on ports hoststream has
no use for: Jaeger and Zipkin receivers, sampling, health and metrics).
"""

from __future__ import annotations

from typing import Any

import httpx
import yaml

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import LocalService, StackPaths
from hoststream.stack.builds import REPO_DEPLOY, BackgroundBuild

__all__ = ["Jaeger"]

#: Traces kept in memory; the oldest are dropped beyond it.
MAX_TRACES = 50_000


class Jaeger(LocalService):
    """Jaeger with in-memory storage, OTLP in and the query API out, on loopback.

    Args:
        paths: the stack's folders; the binary is ``<lib>/jaeger/jaeger``.
        otlp_http_port: OTLP/HTTP receiver (hoststream exports here).
        otlp_grpc_port: OTLP/gRPC receiver, for other senders.
        query_port: the UI and its HTTP API.
        query_grpc_port: the query gRPC API (Jaeger always starts it).
    """

    start_timeout_s = 60.0

    def __init__(
        self,
        paths: StackPaths,
        otlp_http_port: int,
        otlp_grpc_port: int,
        query_port: int,
        query_grpc_port: int,
    ) -> None:
        super().__init__("jaeger", paths)
        self.otlp_http_port = otlp_http_port
        self.otlp_grpc_port = otlp_grpc_port
        self.query_port = query_port
        self.query_grpc_port = query_grpc_port
        self.build = BackgroundBuild(
            "jaeger", REPO_DEPLOY / "build-jaeger.sh", paths.lib / "jaeger" / "jaeger", paths
        )

    @property
    def address(self) -> str:
        """The query UI and API."""
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def otlp_endpoint(self) -> str:
        """Where OTLP/HTTP senders export (``HOSTSTREAM_OTLP_ENDPOINT``)."""
        return f"http://127.0.0.1:{self.otlp_http_port}"

    @property
    def ports(self) -> list[int]:
        return [self.otlp_http_port, self.otlp_grpc_port, self.query_port, self.query_grpc_port]

    @property
    def binary(self) -> str:
        return str(self.paths.lib / "jaeger" / "jaeger")

    @property
    def config_file(self) -> str:
        return str(self.paths.config(self.name) / "config.yaml")

    def config(self) -> dict[str, Any]:
        """The collector configuration: OTLP -> memory store <- query API."""
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query"],
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["jaeger_storage_exporter"],
                    }
                },
                "telemetry": {
                    "resource": {"service.name": "jaeger"},
                    # "none": no Prometheus endpoint of its own (it would bind :8888).
                    "metrics": {"level": "none"},
                    "logs": {"level": "warn", "encoding": "console"},
                },
            },
            "extensions": {
                "jaeger_storage": {
                    "backends": {"memstore": {"memory": {"max_traces": MAX_TRACES}}}
                },
                "jaeger_query": {
                    "storage": {"traces": "memstore"},
                    "http": {"endpoint": f"127.0.0.1:{self.query_port}"},
                    "grpc": {"endpoint": f"127.0.0.1:{self.query_grpc_port}"},
                },
            },
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{self.otlp_grpc_port}"},
                        "http": {"endpoint": f"127.0.0.1:{self.otlp_http_port}"},
                    }
                }
            },
            # Spans reach the store within the batch timeout (200 ms by default).
            "processors": {"batch": {}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
        }

    def prepare(self) -> None:
        conf_dir = self.paths.config(self.name)
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "config.yaml").write_text(
            "# Written by hoststream/stack/jaeger.py at each start; edits are overwritten.\n"
            + yaml.safe_dump(self.config(), sort_keys=False),
            encoding="utf-8",
        )

    def command(self) -> list[str]:
        if not (self.paths.lib / "jaeger" / "jaeger").is_file():
            raise PrerequisiteMissingError(
                f"Jaeger is not built ({self.binary} is missing); run `make install` "
                "(or `bash deploy/local/build-jaeger.sh`), or let `hoststream stack up` build it"
            )
        return [self.binary, "--config", self.config_file]

    def healthy(self) -> bool:
        # The query API answers only once storage and query are both up.
        try:
            response = httpx.get(f"{self.address}/api/services", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

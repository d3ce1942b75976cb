"""VictoriaLogs (built by ``deploy/local/build-victorialogs.sh``): the stack's log store.

Every component ships its log records to it over OTLP
(``HOSTSTREAM_OTLP_LOGS_ENDPOINT``, its ``/insert/opentelemetry/v1/logs``),
batched in a background thread, each with the trace and span ids of the span
it was written in; it also takes the Loki push API
(``/insert/loki/api/v1/push``), so Promtail and Alloy can ship to it too.
Its query API (``/select/logsql/query``) finds a trace's log lines by
``trace_id``. Loki itself is AGPL and is not built here.
"""

from __future__ import annotations

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import LoopbackHttpService, StackPaths
from hoststream.stack.builds import REPO_DEPLOY, BackgroundBuild

__all__ = ["VICTORIALOGS_PORT", "VictoriaLogs"]

VICTORIALOGS_PORT = 9428


class VictoriaLogs(LoopbackHttpService):
    """VictoriaLogs on loopback, its data under the stack's data folder.

    Args:
        paths: the stack's folders; the binary is ``<lib>/victorialogs/victoria-logs``.
        port: its HTTP port (ingestion, queries, UI).
    """

    start_timeout_s = 60.0

    def __init__(self, paths: StackPaths, port: int = VICTORIALOGS_PORT) -> None:
        super().__init__("victorialogs", paths, port)
        self.build = BackgroundBuild(
            "victorialogs",
            REPO_DEPLOY / "build-victorialogs.sh",
            paths.lib / "victorialogs" / "victoria-logs",
            paths,
        )

    @property
    def otlp_logs_endpoint(self) -> str:
        """Where components send their log records (``HOSTSTREAM_OTLP_LOGS_ENDPOINT``)."""
        return f"{self.address}/insert/opentelemetry/v1/logs"

    def command(self) -> list[str]:
        binary = self.paths.lib / "victorialogs" / "victoria-logs"
        if not binary.is_file():
            raise PrerequisiteMissingError(
                f"VictoriaLogs is not built ({binary} is missing); run `make install` "
                "(or `bash deploy/local/build-victorialogs.sh`), "
                "or let `hoststream stack up` build it"
            )
        return [
            str(binary),
            f"-storageDataPath={self.paths.data(self.name)}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=7d",
            "-loggerLevel=WARN",
        ]

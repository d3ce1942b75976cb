"""VictoriaMetrics single-node, from the Debian package ``victoria-metrics``."""

from __future__ import annotations

import shutil

import httpx

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import LocalService, StackPaths

__all__ = ["VictoriaMetrics"]


class VictoriaMetrics(LocalService):
    def __init__(self, paths: StackPaths, port: int) -> None:
        super().__init__("victoriametrics", paths)
        self.port = port

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port]

    def command(self) -> list[str]:
        binary = shutil.which("victoria-metrics")
        if binary is None:
            raise PrerequisiteMissingError(
                "victoria-metrics is not installed; run `make install` "
                "(or `apt-get install victoria-metrics`)"
            )
        return [
            binary,
            f"-storageDataPath={self.paths.data(self.name)}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=30d",
            # Samples are readable at once, which tests and dashboards both want.
            "-search.latencyOffset=0s",
            # A sink that dies between writing a batch and committing its offsets
            # writes the batch again; identical samples then collapse into one.
            "-dedup.minScrapeInterval=1ms",
            "-loggerLevel=WARN",
        ]

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.address}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

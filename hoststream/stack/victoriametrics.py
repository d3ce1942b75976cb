"""VictoriaMetrics single-node: built from source with its UI, or Debian's until then.

Debian's ``victoria-metrics`` package (1.79) is built without vmui, the
built-in UI whose link `hoststream run` prints at the end; the Go module of a
newer release carries the built UI, so ``make install`` builds that in the
background (``deploy/local/build-victoriametrics.sh``). The stack runs the
built binary once it exists and Debian's until then, so the first run never
waits for the build; `hoststream run` moves a running Debian server over
(:meth:`VictoriaMetrics.outdated`; same data folder: newer releases read the
data of older ones).
"""

from __future__ import annotations

import os
import shutil
import ssl
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import LocalService, StackPaths
from hoststream.stack.security import VM_USER, StackSecurity

__all__ = ["VictoriaMetrics"]


class VictoriaMetrics(LocalService):
    """VictoriaMetrics, scraping the pipeline's own ``/metrics`` as well.

    Args:
        scrape_targets: component name to the loopback port of its ``/metrics``.
    """

    def __init__(
        self,
        paths: StackPaths,
        port: int,
        scrape_targets: dict[str, int],
        security: StackSecurity | None = None,
    ) -> None:
        super().__init__("victoriametrics", paths)
        self.port = port
        self.scrape_targets = scrape_targets
        self.security = security

    def prepare(self) -> None:
        # Components that are not running are simply down targets.
        conf = self.paths.config(self.name)
        conf.mkdir(parents=True, exist_ok=True)
        # The secure stack's API serves HTTPS, its /metrics included: that
        # target says so itself (``__scheme__``), in the one job dashboards expect.
        https = {"api"} if self.security is not None else set()
        job: dict[str, Any] = {
            "job_name": "hoststream-pipeline",
            "scrape_interval": "10s",
            "static_configs": [
                {
                    "targets": [f"127.0.0.1:{port}"],
                    "labels": {"component": name}
                    | ({"__scheme__": "https"} if name in https else {}),
                }
                for name, port in sorted(self.scrape_targets.items())
            ],
        }
        if self.security is not None:
            job["tls_config"] = {"ca_file": str(self.security.ca_file.resolve())}
        scrape = {"scrape_configs": [job]}
        (conf / "scrape.yaml").write_text(yaml.safe_dump(scrape, sort_keys=False))

    @property
    def address(self) -> str:
        scheme = "https" if self.security is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        if self.security is None:
            return {}
        # Through the environment (-envflag.enable), not the command line,
        # which every user of the machine can read.
        return {
            "httpAuth_username": VM_USER,
            "httpAuth_password": self.security.password("victoriametrics"),
        }

    def _tls_flags(self) -> list[str]:
        if self.security is None:
            return []
        cert = self.security.certificate("victoriametrics")
        return [
            "-tls",
            f"-tlsCertFile={cert.cert_file.resolve()}",
            f"-tlsKeyFile={cert.key_file.resolve()}",
            "-envflag.enable",
        ]

    @property
    def ports(self) -> list[int]:
        return [self.port]

    @property
    def built_binary(self) -> Path:
        """Where ``build-victoriametrics.sh`` puts the server with vmui."""
        return self.paths.lib / "victoriametrics" / "victoria-metrics"

    def binary(self) -> Path:
        """The built server if it exists, else Debian's."""
        if self.built_binary.is_file() and os.access(self.built_binary, os.X_OK):
            return self.built_binary.resolve()
        installed = shutil.which("victoria-metrics")
        if installed is None:
            raise PrerequisiteMissingError(
                "victoria-metrics is not installed; run `make install` "
                "(or `apt-get install victoria-metrics`)"
            )
        return Path(installed).resolve()

    def outdated(self) -> bool:
        """True while it runs Debian's server and the built one (with vmui) is there."""
        pid = self.running_pid()
        return pid is not None and self._binary_of(pid) not in (None, self.binary())

    @staticmethod
    def _binary_of(pid: int) -> Path | None:
        try:
            return Path(psutil.Process(pid).exe()).resolve()
        except (psutil.Error, OSError):
            return None

    def command(self) -> list[str]:
        return [
            str(self.binary()),
            f"-storageDataPath={self.paths.data(self.name)}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=30d",
            # Samples are readable at once, which tests and dashboards both want.
            "-search.latencyOffset=0s",
            # A sink that dies between writing a batch and committing its offsets
            # writes the batch again; identical samples then collapse into one.
            "-dedup.minScrapeInterval=1ms",
            f"-promscrape.config={self.paths.config(self.name) / 'scrape.yaml'}",
            "-loggerLevel=WARN",
            *self._tls_flags(),
        ]

    def healthy(self) -> bool:
        if self.security is not None:
            auth = (VM_USER, self.security.password("victoriametrics"))
            verify = ssl.create_default_context(cafile=str(self.security.ca_file))
            try:
                response = httpx.get(
                    f"{self.address}/health", timeout=2.0, auth=auth, verify=verify
                )
            except httpx.HTTPError:
                return False
            return response.status_code == 200
        try:
            return httpx.get(f"{self.address}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

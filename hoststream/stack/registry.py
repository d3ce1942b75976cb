"""Apicurio Registry 3, serving the Confluent-compatible schema registry API.

Confluent's own registry cannot be installed from the package registries this
project builds from; Apicurio's ``/apis/ccompat/v7`` speaks the same protocol,
so ``confluent_kafka``'s clients and any Confluent-compatible consumer work
against it. Schemas are stored in the stack's PostgreSQL, so schema ids stay
valid across restarts of the registry.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import LocalService, StackPaths
from hoststream.stack.java import find_java

__all__ = ["SchemaRegistry"]

#: Apicurio Registry 3.3 is compiled for Java 21.
REGISTRY_MIN_JAVA = 21


class SchemaRegistry(LocalService):
    start_timeout_s = 120.0

    def __init__(
        self, paths: StackPaths, port: int, management_port: int, jdbc_url: str | None
    ) -> None:
        super().__init__("schema-registry", paths)
        self.port = port
        self.management_port = management_port
        self.jdbc_url = jdbc_url

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}/apis/ccompat/v7"

    @property
    def ports(self) -> list[int]:
        return [self.port, self.management_port]

    @property
    def appdir(self) -> Path:
        return self.paths.lib / "apicurio"

    def prepare(self) -> None:
        if not (self.appdir / "quarkus-run.jar").exists():
            raise PrerequisiteMissingError(
                f"Apicurio Registry is missing from {self.appdir}; run `make install`"
            )

    def working_dir(self) -> Path:
        return self.appdir

    def environment(self) -> dict[str, str]:
        if not self.jdbc_url:
            return {}
        return {
            "APICURIO_STORAGE_KIND": "sql",
            "APICURIO_STORAGE_SQL_KIND": "postgresql",
            "APICURIO_DATASOURCE_URL": self.jdbc_url,
            "APICURIO_DATASOURCE_USERNAME": "postgres",
            "APICURIO_DATASOURCE_PASSWORD": "",
        }

    def command(self) -> list[str]:
        return [
            str(find_java(REGISTRY_MIN_JAVA)),
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:CICompilerCount=2",
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.management.host=127.0.0.1",
            f"-Dquarkus.management.port={self.management_port}",
            "-Dquarkus.log.level=WARN",
            '-Dquarkus.log.category."io.quarkus".level=INFO',
            "-jar",
            str(self.appdir / "quarkus-run.jar"),
        ]

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"{self.address}/subjects", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

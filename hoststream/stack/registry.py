"""Apicurio Registry 3, serving the Confluent-compatible schema registry API.

Confluent's own registry cannot be installed from the package registries this
project builds from; Apicurio's ``/apis/ccompat/v7`` speaks the same protocol,
so ``confluent_kafka``'s clients and any Confluent-compatible consumer work
against it. Schemas are stored in the stack's PostgreSQL, so schema ids stay
valid across restarts of the registry.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import LocalService, StackPaths
from hoststream.stack.java import find_java
from hoststream.stack.security import REGISTRY_ROLE, StackSecurity

__all__ = ["SchemaRegistry"]

#: Apicurio Registry 3.3 is compiled for Java 21.
REGISTRY_MIN_JAVA = 21


class SchemaRegistry(LocalService):
    start_timeout_s = 120.0

    def __init__(
        self,
        paths: StackPaths,
        port: int,
        management_port: int,
        jdbc_url: str | None,
        security: StackSecurity | None = None,
    ) -> None:
        super().__init__("schema-registry", paths)
        self.port = port
        self.management_port = management_port
        self.jdbc_url = jdbc_url
        self.security = security

    @property
    def address(self) -> str:
        scheme = "https" if self.security is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/apis/ccompat/v7"

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
        self.paths.config(self.name).mkdir(parents=True, exist_ok=True)

    def working_dir(self) -> Path:
        return self.appdir

    def environment(self) -> dict[str, str]:
        if not self.jdbc_url:
            return {}
        user, password = "postgres", ""
        if self.security is not None:
            # Its own role, owner of its own database only; through the environment,
            # not the command line, which every user of the machine can read.
            user, password = REGISTRY_ROLE, self.security.password(REGISTRY_ROLE)
        return {
            "APICURIO_STORAGE_KIND": "sql",
            "APICURIO_STORAGE_SQL_KIND": "postgresql",
            "APICURIO_DATASOURCE_URL": self.jdbc_url,
            "APICURIO_DATASOURCE_USERNAME": user,
            "APICURIO_DATASOURCE_PASSWORD": password,
        }

    def _tls_flags(self) -> list[str]:
        if self.security is None:
            return [f"-Dquarkus.http.port={self.port}"]
        cert = self.security.certificate("schema-registry")
        return [
            f"-Dquarkus.http.ssl-port={self.port}",
            f"-Dquarkus.http.ssl.certificate.files={cert.cert_file.resolve()}",
            f"-Dquarkus.http.ssl.certificate.key-files={cert.key_file.resolve()}",
            # No plaintext listener at all.
            "-Dquarkus.http.insecure-requests=disabled",
        ]

    def command(self) -> list[str]:
        return [
            str(find_java(REGISTRY_MIN_JAVA)),
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:CICompilerCount=2",
            # Start-up is most of the work a local registry does (it answers a
            # handful of schema look-ups a run): compile with C1 only, and map
            # the classes of the last run from an archive the JVM keeps up to
            # date itself (Java 19+), instead of loading them from the jars.
            "-XX:TieredStopAtLevel=1",
            "-XX:+AutoCreateSharedArchive",
            f"-XX:SharedArchiveFile={(self.paths.config(self.name) / 'classes.jsa').resolve()}",
            "-Dquarkus.http.host=127.0.0.1",
            *self._tls_flags(),
            "-Dquarkus.management.host=127.0.0.1",
            f"-Dquarkus.management.port={self.management_port}",
            "-Dquarkus.log.level=WARN",
            '-Dquarkus.log.category."io.quarkus".level=INFO',
            "-jar",
            str(self.appdir / "quarkus-run.jar"),
        ]

    def healthy(self) -> bool:
        verify: ssl.SSLContext | bool = True
        if self.security is not None:
            verify = ssl.create_default_context(cafile=str(self.security.ca_file))
        try:
            response = httpx.get(f"{self.address}/subjects", timeout=2.0, verify=verify)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

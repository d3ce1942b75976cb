"""What every service run from Kafka's jars (the broker, MirrorMaker 2) does to start.

``make install`` fetches each one's jars from Maven Central into a folder of
its own under the stack's ``lib``; the service refuses to start without them,
logs through a log4j2 configuration of its own and runs on Java 17+.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from hoststream.errors import PrerequisiteMissingError
from hoststream.stack.base import LocalService
from hoststream.stack.java import find_java

__all__ = ["KafkaJarService"]


class KafkaJarService(LocalService):
    """A local service that runs a main class from a folder of Kafka's jars.

    Subclasses name ``jar_folder`` (under the stack's ``lib``), ``jar_marker``
    (a glob matching a jar that is there once the folder is complete),
    ``jar_title`` (what the jars are, in the message when they are missing)
    and their ``log4j2`` configuration.
    """

    jar_folder: ClassVar[str]
    jar_marker: ClassVar[str]
    jar_title: ClassVar[str]
    log4j2: ClassVar[str]

    @property
    def libdir(self) -> Path:
        return self.paths.lib / self.jar_folder

    def prepare(self) -> None:
        """Stop at once without the jars; write the log4j2 configuration."""
        if not any(self.libdir.glob(self.jar_marker)):
            raise PrerequisiteMissingError(
                f"{self.jar_title} jars are missing from {self.libdir}; run `make install`"
            )
        conf = self.paths.config(self.name)
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "log4j2.properties").write_text(self.log4j2)

    def java_command(
        self, main_class: str, args: Sequence[str], jvm_options: Sequence[str]
    ) -> list[str]:
        """Java 17+ running ``main_class`` with ``args`` from the jars.

        Args:
            main_class: the class whose ``main`` runs.
            args: its arguments.
            jvm_options: the service's own JVM options (heap, garbage collector), first.
        """
        conf = self.paths.config(self.name)
        return [
            str(find_java(17)),
            *jvm_options,
            "-XX:CICompilerCount=2",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
            "-cp",
            f"{self.libdir}/*",
            main_class,
            *args,
        ]

"""Apache Kafka 4 in KRaft mode, run from the jars that ``make install`` fetched."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

from hoststream.stack.base import StackPaths
from hoststream.stack.kafka_jars import KafkaJarService
from hoststream.stack.security import ADMIN_USER, BROKER_PRINCIPAL, StackSecurity

__all__ = ["KafkaBroker", "broker_layout"]

_LOG4J2 = """\
status = warn
appender.file.type = Console
appender.file.name = OUT
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.kafka_request.name = kafka.request.logger
logger.kafka_request.level = warn
logger.state_change.name = state.change.logger
logger.state_change.level = warn
"""


def broker_layout(brokers: int, port_offset: int = 0) -> list[tuple[int, int, int]]:
    """(node id, client port, controller port) for each broker of a cluster.

    One broker keeps Kafka's usual 9092/9093; three brokers use N9092/N9093 so a
    single-broker stack and a cluster can run side by side. ``port_offset``
    moves every port, for a second stack on the same machine.
    """
    if brokers == 1:
        return [(1, 9092 + port_offset, 9093 + port_offset)]
    return [
        (n, n * 10000 + 9092 + port_offset, n * 10000 + 9093 + port_offset)
        for n in range(1, brokers + 1)
    ]


def new_cluster_id() -> str:
    # Kafka's Uuid.toString format: 16 random bytes, URL-safe base64, no padding.
    # An id starting with '-' would be read as an option by the storage tool.
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker(KafkaJarService):
    """One KRaft node that is both broker and controller."""

    jar_folder = "kafka"
    jar_marker = "kafka_2.13-*.jar"
    jar_title = "Kafka"
    log4j2 = _LOG4J2

    def __init__(
        self,
        paths: StackPaths,
        node_id: int,
        brokers: int,
        cluster_id_file: Path,
        port_offset: int = 0,
        *,
        security: StackSecurity | None = None,
    ) -> None:
        super().__init__(f"kafka-{node_id}", paths)
        self.security = security
        self.node_id = node_id
        self.brokers = brokers
        self.cluster_id_file = cluster_id_file
        layout = broker_layout(brokers, port_offset)
        _, self.port, self.controller_port = layout[node_id - 1]
        self.voters = ",".join(f"{n}@127.0.0.1:{c}" for n, _, c in layout)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port, self.controller_port]

    def _listener_properties(self) -> list[str]:
        if self.security is None:
            return [
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ]
        security = self.security
        keystore = self.paths.config(self.name) / "broker-keystore.pem"
        admin_password = security.password(ADMIN_USER)
        client_auth = "required" if security.mutual_tls else "none"
        return [
            f"listeners=SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{self.port}",
            "inter.broker.listener.name=SASL_SSL",
            # The controller quorum talks mutual TLS: the brokers' certificate is their identity.
            "listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL",
            "listener.name.controller.ssl.client.auth=required",
            f"listener.name.sasl_ssl.ssl.client.auth={client_auth}",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN_USER}" password="{admin_password}";',
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={keystore.resolve()}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={security.ca_file.resolve()}",
            "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{ADMIN_USER};User:{BROKER_PRINCIPAL}",
            "allow.everyone.if.no.acl.found=false",
        ]

    def _properties(self) -> str:
        replication = min(3, self.brokers)
        min_isr = 2 if self.brokers >= 3 else 1
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                f"controller.quorum.voters={self.voters}",
                "controller.listener.names=CONTROLLER",
                *self._listener_properties(),
                f"log.dirs={self.paths.data(self.name).resolve()}",
                # Topics are created through the admin API with explicit settings.
                "auto.create.topics.enable=false",
                f"default.replication.factor={replication}",
                f"min.insync.replicas={min_isr}",
                f"offsets.topic.replication.factor={replication}",
                f"transaction.state.log.replication.factor={replication}",
                f"transaction.state.log.min.isr={min_isr}",
                f"share.coordinator.state.topic.replication.factor={replication}",
                f"share.coordinator.state.topic.min.isr={min_isr}",
                "group.initial.rebalance.delay.ms=0",
                # Two cores are shared by every service: keep thread pools small.
                "num.network.threads=2",
                "num.io.threads=2",
                "num.recovery.threads.per.data.dir=1",
                "background.threads=2",
                "log.retention.hours=72",
                "",
            ]
        )

    def prepare(self) -> None:
        super().prepare()
        conf = self.paths.config(self.name)
        scram: list[str] = []
        if self.security is not None:
            # Kafka's PEM key store is one file: the private key, then the certificate.
            broker = self.security.certificate(BROKER_PRINCIPAL)
            keystore = conf / "broker-keystore.pem"
            keystore.touch(mode=0o600)
            keystore.write_bytes(broker.key_file.read_bytes() + broker.cert_file.read_bytes())
            admin = self.security.password(ADMIN_USER)
            # The admin user must exist before the first start: the brokers log in with it.
            scram = ["--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={admin}]"]
        properties = conf / "server.properties"
        properties.touch(mode=0o600)  # it holds the admin password in the secure stack
        properties.write_text(self._properties())
        data = self.paths.data(self.name)
        if (data / "meta.properties").exists():
            return
        data.mkdir(parents=True, exist_ok=True)
        self.cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
        if not self.cluster_id_file.exists():
            self.cluster_id_file.write_text(new_cluster_id())
        cluster_id = self.cluster_id_file.read_text().strip()
        self._run_java(
            "kafka.tools.StorageTool",
            [
                "format",
                "-t",
                cluster_id,
                "-c",
                str(conf / "server.properties"),
                "--ignore-formatted",
                *scram,
            ],
        )

    def _java_args(
        self, main_class: str, args: list[str], extra: list[str] | None = None
    ) -> list[str]:
        return self.java_command(
            main_class,
            args,
            jvm_options=[
                *(extra or []),
                "-Xms256m",
                "-Xmx512m",
                "-XX:+UseG1GC",
                "-XX:ParallelGCThreads=1",
                "-XX:ConcGCThreads=1",
            ],
        )

    def _run_java(self, main_class: str, args: list[str]) -> None:
        log = self.paths.log(self.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            subprocess.run(
                self._java_args(main_class, args), stdout=out, stderr=subprocess.STDOUT, check=True
            )

    def class_archive(self) -> Path:
        """The broker's class-data-sharing archive, named after the jars it was made from."""
        jars = sorted(p.name for p in self.libdir.glob("*.jar"))
        key = hashlib.sha256("\n".join(jars).encode()).hexdigest()[:12]
        return (self.paths.config(self.name) / f"classes-{key}.jsa").resolve()

    def command(self) -> list[str]:
        # Class data sharing: the first broker to run writes the classes it
        # loaded to an archive when it stops; later starts map them instead of
        # loading and verifying some 5,000 classes from the jars again, a
        # good part of a broker's start-up on a busy two-core machine. A
        # missing or unusable archive only costs that saving (-Xshare:auto).
        archive = self.class_archive()
        sharing = (
            f"-XX:SharedArchiveFile={archive}"
            if archive.is_file()
            else f"-XX:ArchiveClassesAtExit={archive}"
        )
        return self._java_args(
            "kafka.Kafka",
            [str(self.paths.config(self.name) / "server.properties")],
            extra=[sharing],
        )

    def client_config(self) -> dict[str, str]:
        """How the stack itself reaches this broker (as the admin user when secure)."""
        if self.security is None:
            return {"bootstrap.servers": self.address}
        return {
            "bootstrap.servers": self.address,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": ADMIN_USER,
            "sasl.password": self.security.password(ADMIN_USER),
            "ssl.ca.location": str(self.security.ca_file),
            **(self._admin_certificate() if self.security.mutual_tls else {}),
        }

    def _admin_certificate(self) -> dict[str, str]:
        assert self.security is not None
        cert = self.security.certificate(ADMIN_USER)
        return {
            "ssl.certificate.location": str(cert.cert_file),
            "ssl.key.location": str(cert.key_file),
        }

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        # log_level 0: refused connections while the broker starts are expected, not news.
        admin = AdminClient({**self.client_config(), "socket.timeout.ms": 2000, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:  # any failure means "not answering yet"
            return False
        # Ready when this node is a live broker and the quorum has a controller.
        return self.node_id in metadata.brokers and metadata.controller_id >= 0

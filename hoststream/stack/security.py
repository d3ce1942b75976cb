"""The secure stack's credentials: a CA, certificates, one principal per component, and its rights.

``hoststream stack up --secure`` keeps everything under ``<state dir>/secure/``:

- ``ca/ca.pem`` (and its key): the local certificate authority;
- ``certs/<name>.pem`` and ``-key.pem``: each service's server certificate and
  each component's client certificate (the CN is the principal);
- ``secrets/<name>``: one random password per principal, and each component's
  SQL connection string, mode 0600;
- ``<component>.env``: the settings of one component (its user name and the
  paths of its secret files, never a secret itself), to source after
  ``stack.env``; ``hoststream run`` applies them by itself.

:data:`KAFKA_RIGHTS` and :data:`SQL_ROLES` say what each principal may do; the
brokers and PostgreSQL enforce it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from hoststream.certificates import Authority, IssuedCertificate, create_authority, issue
from hoststream.errors import StackError
from hoststream.schemas.records import FAMILIES
from hoststream.topics import SCHEMAS_TOPIC, dead_letter_topic

__all__ = [
    "ADMIN_USER",
    "BROKER_PRINCIPAL",
    "COMPONENTS",
    "KAFKA_RIGHTS",
    "REGISTRY_ROLE",
    "SQL_ROLES",
    "VM_USER",
    "KafkaRight",
    "StackSecurity",
    "acl_bindings",
    "grant_kafka",
]

#: The brokers' own SASL user (inter-broker traffic, creating users and ACLs).
ADMIN_USER = "hoststream-admin"
#: The brokers' certificate CN, a super user on the controller listener (mutual TLS).
BROKER_PRINCIPAL = "kafka-broker"
#: The components, each with a principal of its own: ``hoststream-<component>``.
COMPONENTS = ("producer", "stream", "sink-victoriametrics", "sink-sql", "sink-alerts", "api")
#: Window sizes whose aggregate topics' dead letters a sink may write; the
#: stream processor's ``--windows`` may use these.
AGGREGATE_WINDOWS = ("10s", "30s", "1m", "5m", "15m", "1h")
#: PostgreSQL roles: the SQL sink's owns the tables, the API's may only read them.
SQL_ROLES = {"sink-sql": "hoststream_sink_sql", "api": "hoststream_api"}
#: The registry's own PostgreSQL role (owner of its database).
REGISTRY_ROLE = "hoststream_registry"
#: VictoriaMetrics' one basic-auth user (it has no per-user rights).
VM_USER = "hoststream"


def user_of(component: str) -> str:
    return f"hoststream-{component}"


@dataclass(frozen=True)
class KafkaRight:
    """One right of a principal: operations on topics or groups named (or prefixed) so."""

    resource: str  # "topic" or "group"
    name: str
    operations: tuple[str, ...]
    prefixed: bool = False


def _topics(names: list[str], operations: tuple[str, ...]) -> list[KafkaRight]:
    return [KafkaRight("topic", name, operations) for name in names]


_READ = ("READ", "DESCRIBE")
SINKS = ("victoriametrics", "sql", "alerts")
_WRITE = ("WRITE", "DESCRIBE", "CREATE")


def kafka_rights(prefix: str = "") -> dict[str, list[KafkaRight]]:
    """What each component's principal may do on Kafka, for topics under ``prefix``."""
    metrics = [f"{prefix}metrics.{family}" for family in FAMILIES]
    metric_dlqs = [dead_letter_topic(topic) for topic in metrics]
    aggregates = f"{prefix}metrics.agg."
    aggregate_dlqs = [dead_letter_topic(f"{aggregates}{w}") for w in AGGREGATE_WINDOWS]
    alerts = f"{prefix}alerts"
    streams_app = f"{prefix}hoststream-streams"
    return {
        "producer": _topics(metrics, _WRITE),
        "stream": [
            *_topics(metrics, _READ),
            *_topics(metric_dlqs, _WRITE),
            KafkaRight("topic", aggregates, _WRITE, prefixed=True),
            *_topics([alerts], _WRITE),
            # The writer schemas of what it emits, mirrored with it to other regions.
            *_topics([f"{prefix}{SCHEMAS_TOPIC}"], _WRITE),
            # Faust's changelog and assignor topics and its group all start with the app id.
            KafkaRight("topic", streams_app, ("READ", *_WRITE), prefixed=True),
            KafkaRight("group", streams_app, _READ, prefixed=True),
        ],
        "sink-victoriametrics": [
            *_topics(metrics, _READ),
            KafkaRight("topic", aggregates, _READ, prefixed=True),
            *_topics(metric_dlqs + aggregate_dlqs, _WRITE),
            KafkaRight("group", f"{prefix}hoststream-sink-victoriametrics", _READ),
        ],
        "sink-sql": [
            KafkaRight("topic", aggregates, _READ, prefixed=True),
            *_topics([alerts], _READ),
            *_topics([*aggregate_dlqs, dead_letter_topic(alerts)], _WRITE),
            KafkaRight("group", f"{prefix}hoststream-sink-sql", _READ),
        ],
        "sink-alerts": [
            *_topics([alerts], _READ),
            *_topics([dead_letter_topic(alerts)], _WRITE),
            KafkaRight("group", f"{prefix}hoststream-sink-alerts", _READ),
        ],
        "api": [
            KafkaRight("topic", aggregates, _READ, prefixed=True),
            KafkaRight("group", "hoststream-api-sse-", _READ, prefixed=True),
            # Its /metrics reports every group's lag: committed offsets and ends, nothing more.
            *_topics([*metrics, alerts], ("DESCRIBE",)),
            *(
                KafkaRight("group", group, ("DESCRIBE",))
                for group in (streams_app, *(f"{prefix}hoststream-sink-{kind}" for kind in SINKS))
            ),
        ],
    }


#: The rights with hoststream's default topic names (no prefix).
KAFKA_RIGHTS = kafka_rights()


def acl_bindings(prefix: str = "") -> list[AclBinding]:
    """Every ALLOW binding of :func:`kafka_rights`; anything else is denied."""
    bindings = []
    for component, rights in kafka_rights(prefix).items():
        for right in rights:
            for operation in right.operations:
                bindings.append(
                    AclBinding(
                        ResourceType.TOPIC if right.resource == "topic" else ResourceType.GROUP,
                        right.name,
                        ResourcePatternType.PREFIXED
                        if right.prefixed
                        else ResourcePatternType.LITERAL,
                        f"User:{user_of(component)}",
                        "*",
                        AclOperation[operation],
                        AclPermissionType.ALLOW,
                    )
                )
    return bindings


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")


class StackSecurity:
    """The files of a secure stack under ``<root>/secure``, made on first use and then kept.

    Args:
        root: the stack's state folder.
        mutual_tls: Kafka clients must present their certificate as well as their password.
    """

    def __init__(self, root: Path, mutual_tls: bool = False) -> None:
        self.dir = root / "secure"
        self.mutual_tls = mutual_tls
        if not self.dir.exists():
            # Only the stack's own user may even list what is in it.
            self.dir.mkdir(parents=True, mode=0o700)

    @property
    def authority(self) -> Authority:
        return create_authority(self.dir / "ca")

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca" / "ca.pem"

    def certificate(self, name: str) -> IssuedCertificate:
        """The certificate of a service or principal ``name``, issued on first use."""
        certs = self.dir / "certs"
        existing = IssuedCertificate(certs / f"{name}.pem", certs / f"{name}-key.pem")
        if existing.cert_file.exists() and existing.key_file.exists():
            return existing
        return issue(self.authority, name, certs)

    def secret_file(self, name: str) -> Path:
        return self.dir / "secrets" / name

    def password(self, user: str) -> str:
        """The password of ``user``, made on first use; kept in ``secrets/<user>``."""
        path = self.secret_file(user)
        if not path.exists():
            _write_secret(path, secrets.token_urlsafe(24))
        return path.read_text(encoding="utf-8").strip()

    def prepare(self, components: tuple[str, ...] = COMPONENTS) -> None:
        """Make the CA, every certificate and every password that is missing."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self.authority  # noqa: B018 - made on first use
        for name in (BROKER_PRINCIPAL, "postgres", "victoriametrics", "schema-registry", "api"):
            self.certificate(name)
        self.password(ADMIN_USER)
        for component in components:
            self.certificate(user_of(component))
            self.password(user_of(component))

    def sql_dsn_file(self, component: str, port: int) -> Path:
        """A file holding the component's PostgreSQL connection string, TLS verified."""
        role = SQL_ROLES[component]
        path = self.secret_file(f"sql-dsn-{component}")
        dsn = (
            f"postgresql://{role}:{self.password(role)}@127.0.0.1:{port}/hoststream"
            f"?sslmode=verify-full&sslrootcert={self.ca_file}"
        )
        _write_secret(path, dsn)
        return path

    def component_env(self, component: str, sql_port: int | None, vm: bool) -> dict[str, str]:
        """One component's settings: its user and the paths of its secrets."""
        user = user_of(component)
        self.password(user)
        env = {
            "HOSTSTREAM_KAFKA_SASL_USERNAME": user,
            "HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE": str(self.secret_file(user)),
        }
        if self.mutual_tls:
            cert = self.certificate(user)
            env["HOSTSTREAM_KAFKA_SSL_CERTIFICATE_LOCATION"] = str(cert.cert_file)
            env["HOSTSTREAM_KAFKA_SSL_KEY_LOCATION"] = str(cert.key_file)
        if component in SQL_ROLES and sql_port is not None:
            env["HOSTSTREAM_SQL_DSN_FILE"] = str(self.sql_dsn_file(component, sql_port))
        if vm and component in ("sink-victoriametrics", "api"):
            env["HOSTSTREAM_VM_USERNAME"] = VM_USER
            self.password("victoriametrics")
            env["HOSTSTREAM_VM_PASSWORD_FILE"] = str(self.secret_file("victoriametrics"))
        if component == "api":
            cert = self.certificate("api")
            env["HOSTSTREAM_API_TLS_CERT_FILE"] = str(cert.cert_file)
            env["HOSTSTREAM_API_TLS_KEY_FILE"] = str(cert.key_file)
        return env

    def admin_env(self) -> dict[str, str]:
        """The brokers' admin user: for setting the stack up and for tests, never a component."""
        self.password(ADMIN_USER)
        return {
            "HOSTSTREAM_KAFKA_SASL_USERNAME": ADMIN_USER,
            "HOSTSTREAM_KAFKA_SASL_PASSWORD_FILE": str(self.secret_file(ADMIN_USER)),
        }


def grant_kafka(
    admin: AdminClient, security: StackSecurity, prefix: str = "", timeout_s: float = 30.0
) -> None:
    """Create each component's SCRAM user and its ACLs (idempotent), as the admin user.

    Raises:
        StackError: the brokers refused a user or an ACL.
    """
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            user_of(component),
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
            security.password(user_of(component)).encode(),
        )
        for component in COMPONENTS
    ]
    try:
        for future in admin.alter_user_scram_credentials(
            upserts, request_timeout=timeout_s
        ).values():
            future.result()
        for acl_future in admin.create_acls(
            acl_bindings(prefix), request_timeout=timeout_s
        ).values():
            acl_future.result()
    except KafkaException as exc:
        raise StackError(f"the brokers refused the components' users or ACLs: {exc}") from exc

"""The secure stack's principals, rights and files (no services needed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml
from confluent_kafka.admin import AclOperation, ResourcePatternType

from hoststream.stack import Stack
from hoststream.stack.kafka import KafkaBroker
from hoststream.stack.security import COMPONENTS, acl_bindings, kafka_rights
from hoststream.stack.victoriametrics import VictoriaMetrics


def operations(component: str, prefix: str = "") -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for right in kafka_rights(prefix)[component]:
        found.setdefault((right.resource, right.name), set()).update(right.operations)
    return found


def test_the_producer_may_only_write_the_metric_topics() -> None:
    rights = operations("producer")
    assert {name for _, name in rights} == {
        f"metrics.{f}" for f in ("cpu", "memory", "disk", "network", "system")
    }
    assert all("READ" not in ops for ops in rights.values())
    assert all(resource == "topic" for resource, _ in rights)


def test_sinks_and_the_api_write_nothing_but_dead_letters() -> None:
    for component in ("sink-victoriametrics", "sink-sql", "sink-alerts", "api"):
        for right in kafka_rights()[component]:
            if "WRITE" in right.operations:
                assert right.name.endswith(".dlq"), (component, right)
                assert not right.prefixed


def test_the_stream_processor_writes_aggregates_alerts_schemas_and_its_own_topics_only() -> None:
    written = {r.name for r in kafka_rights()["stream"] if "WRITE" in r.operations}
    assert written == {
        "metrics.agg.",
        "alerts",
        "hoststream-streams",
        "_schemas",
        *(f"metrics.{f}.dlq" for f in ("cpu", "memory", "disk", "network", "system")),
    }


def test_rights_follow_the_topic_prefix() -> None:
    names = {r.name for rights in kafka_rights("prod.").values() for r in rights}
    assert all(n.startswith("prod.") or n == "hoststream-api-sse-" for n in names)


def test_every_binding_allows_one_operation_of_one_principal() -> None:
    bindings = acl_bindings()
    principals = {b.principal for b in bindings}
    assert principals == {f"User:hoststream-{c}" for c in COMPONENTS}
    assert all(b.operation is not AclOperation.ALL for b in bindings)
    prefixed = {b.name for b in bindings if b.resource_pattern_type is ResourcePatternType.PREFIXED}
    assert "metrics." not in prefixed  # never every metrics.* topic at once


def test_the_secure_stack_hands_out_paths_never_secrets(tmp_path: Path) -> None:
    stack = Stack(tmp_path, services=["postgres", "victoriametrics", "kafka"], secure=True)
    assert stack.security is not None
    env = stack.environment()
    assert env["HOSTSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["HOSTSTREAM_VM_URL"].startswith("https://")
    assert "HOSTSTREAM_SQL_DSN" not in env
    secrets_dir = stack.security.dir / "secrets"
    for component in COMPONENTS:
        own = stack.component_environment(component)
        assert own["HOSTSTREAM_KAFKA_SASL_USERNAME"] == f"hoststream-{component}"
        values = {p.read_text().strip() for p in secrets_dir.iterdir()}
        assert not values & set(own.values())
        for key, value in own.items():
            if key.endswith(("PASSWORD_FILE", "DSN_FILE", "KEY_FILE", "KEY_LOCATION")):
                assert stat.S_IMODE(os.stat(value).st_mode) == 0o600, key
    assert stack.component_environment("api")["HOSTSTREAM_API_TLS_CERT_FILE"].endswith("api.pem")
    assert stat.S_IMODE(os.stat(stack.security.dir).st_mode) == 0o700


def test_a_secure_broker_listens_on_sasl_ssl_with_the_standard_authorizer(tmp_path: Path) -> None:
    stack = Stack(tmp_path, services=["kafka"], secure=True)
    [broker] = [s for s in stack.services() if isinstance(s, KafkaBroker)]
    properties = broker._properties()
    assert "listeners=SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093" in properties
    assert "StandardAuthorizer" in properties
    assert "allow.everyone.if.no.acl.found=false" in properties
    assert "PLAINTEXT://" not in properties


def test_the_secure_setting_is_remembered_for_status_and_down(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text('{"brokers": 1, "secure": true}')
    assert Stack(tmp_path).security is not None
    assert Stack(tmp_path, secure=False).security is None


def test_victoriametrics_scrapes_the_secure_api_over_https_with_the_stack_ca(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, services=["victoriametrics"], secure=True)
    [vm] = stack.services()
    assert isinstance(vm, VictoriaMetrics)
    assert stack.security is not None
    stack.security.prepare()
    vm.prepare()
    jobs = yaml.safe_load((stack.paths.config("victoriametrics") / "scrape.yaml").read_text())
    [job] = jobs["scrape_configs"]
    assert job["job_name"] == "hoststream-pipeline"
    assert job["tls_config"]["ca_file"] == str(stack.security.ca_file.resolve())
    schemes = {
        c["labels"]["component"]: c["labels"].get("__scheme__", "http")
        for c in job["static_configs"]
    }
    assert schemes["api"] == "https"
    assert schemes["producer"] == "http"

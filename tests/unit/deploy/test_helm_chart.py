"""The Helm chart (deploy/helm/hoststream): lint, render, and check every manifest.

A real ``helm`` (built from the Go module proxy, tests/support/deploy_tools.py)
lints the chart with ``--strict`` and renders it with each region's values file;
every rendered object is then read by the official Kubernetes Python client's
models (pydantic, unknown fields forbidden), pinned in constraints.txt, so a
misspelt or misplaced field fails here and not at ``kubectl apply``.
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import models as k8s

from tests.support.deploy_tools import deploy_tool

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "hoststream"
REGION_VALUES = sorted((REPO / "deploy" / "helm" / "regions").glob("*.yaml"))
#: The API schema every manifest is checked against: the client's models, made
#: from Kubernetes 1.37's OpenAPI document; helm renders and lints for that version.
KUBERNETES_CLIENT_VERSION = "37.0.2"
KUBERNETES_VERSION = "1.37.0"
WORKLOAD_KINDS = {"DaemonSet", "Deployment", "StatefulSet"}


def helm(*args: str) -> str:
    done = subprocess.run(
        [str(deploy_tool("helm")), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}{done.stdout}"
    return done.stdout


@cache
def _render(values: tuple[Path, ...], sets: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    args = ["template", "hoststream", str(CHART), "--namespace", "hoststream"]
    args += ["--kube-version", KUBERNETES_VERSION]
    for path in values:
        args += ["--values", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    return tuple(doc for doc in yaml.load_all(helm(*args), Loader=_UniqueKeyLoader) if doc)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice, as kubectl's strict decoding does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = {key for key in keys if keys.count(key) > 1}
        if duplicates:
            raise yaml.constructor.ConstructorError(
                None, None, f"keys given twice: {sorted(duplicates)}", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


def render(*values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return list(_render(values, sets))


def model_for(manifest: dict[str, Any]) -> type[Any]:
    # Every object the chart makes is of a v1 group version: V1<Kind> in the client.
    assert manifest["apiVersion"].endswith("v1"), manifest["apiVersion"]
    model = getattr(k8s, f"V1{manifest['kind']}", None)
    assert model is not None, f"no Kubernetes model for {manifest['kind']}"
    return model


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def workloads(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] in WORKLOAD_KINDS]


def test_the_pinned_kubernetes_client_is_the_one_installed() -> None:
    # The schema the manifests are checked against is a pinned version, not whatever resolves.
    assert kubernetes.__version__ == KUBERNETES_CLIENT_VERSION
    assert "release-1.37" in kubernetes.client.Configuration().to_debug_report()


@pytest.mark.parametrize(
    "values", [None, *REGION_VALUES], ids=lambda v: v.name if v else "defaults"
)
def test_helm_lint_strict_passes(values: Path | None) -> None:
    args = ["lint", "--strict", "--kube-version", KUBERNETES_VERSION, str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    assert "1 chart(s) linted, 0 chart(s) failed" in helm(*args)


@pytest.mark.parametrize("values", REGION_VALUES, ids=lambda v: v.name)
def test_every_rendered_manifest_is_valid_against_the_kubernetes_api(values: Path) -> None:
    manifests = render(values, sets=("api.ingress.tlsSecretName=api-tls",))
    kinds = sorted({m["kind"] for m in manifests})
    assert kinds == [
        "ConfigMap",
        "DaemonSet",
        "Deployment",
        "Ingress",
        "Secret",
        "Service",
        "StatefulSet",
    ]
    for manifest in manifests:
        model_for(manifest).model_validate(manifest)


def test_a_misspelt_field_is_refused_by_the_same_check() -> None:
    # The check above could not fail if the models ignored unknown fields.
    deployment = next(iter(by_kind(render(), "Deployment").values()))
    deployment = yaml.safe_load(yaml.safe_dump(deployment))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(ValueError, match="livenesProbe"):
        model_for(deployment).model_validate(deployment)


def test_each_component_runs_its_own_command_from_the_one_image() -> None:
    commands = {
        m["metadata"]["labels"]["app.kubernetes.io/component"]: (
            m["spec"]["template"]["spec"]["containers"][0]["args"]
        )
        for m in workloads(render())
    }
    assert commands == {
        "producer": ["produce"],
        "stream": ["stream", "--windows", "1m,5m"],
        "sink-victoriametrics": ["sink", "victoriametrics"],
        "sink-sql": ["sink", "sql"],
        "sink-alerts": ["sink", "alerts"],
        "api": ["api", "--host", "0.0.0.0", "--port", "8000"],
    }
    images = {m["spec"]["template"]["spec"]["containers"][0]["image"] for m in workloads(render())}
    assert images == {"ghcr.io/hoststream/hoststream:0.1.0"}


def test_every_container_has_requests_probes_and_runs_as_non_root() -> None:
    for workload in workloads(render()):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        for container in pod["containers"]:
            name = workload["metadata"]["name"]
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}, name
            assert container["livenessProbe"]["httpGet"]["path"] == "/metrics", name
            assert container["readinessProbe"]["httpGet"]["path"] in {"/metrics", "/api/v1/health"}
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_api_is_ready_only_while_its_stores_answer() -> None:
    (api,) = by_kind(render(), "Deployment")["hoststream-api"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert api["readinessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    service = by_kind(render(), "Service")["hoststream-api"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_the_producer_runs_on_every_node_named_after_it() -> None:
    (daemonset,) = by_kind(render(), "DaemonSet").values()
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert pod["hostNetwork"] is True
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["HOSTSTREAM_HOST_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


@pytest.mark.parametrize(("asked", "partitions", "replicas"), [(3, 6, 3), (12, 6, 6), (2, 1, 1)])
def test_stream_replicas_never_exceed_the_partitions(
    asked: int, partitions: int, replicas: int
) -> None:
    sets = (f"stream.replicas={asked}", f"kafka.topicPartitions={partitions}")
    (stream,) = by_kind(render(sets=sets), "StatefulSet").values()
    assert stream["spec"]["replicas"] == replicas
    config = next(iter(by_kind(render(sets=sets), "ConfigMap").values()))
    assert config["data"]["HOSTSTREAM_TOPIC_PARTITIONS"] == str(partitions)


def test_the_ingress_is_optional() -> None:
    assert by_kind(render(), "Ingress") == {}
    (ingress,) = by_kind(render(sets=("api.ingress.enabled=true",)), "Ingress").values()
    assert ingress["spec"]["rules"][0]["host"] == "hoststream.example.com"


@pytest.mark.parametrize("values", REGION_VALUES, ids=lambda v: v.name)
def test_each_region_file_names_its_region_and_its_own_kafka(values: Path) -> None:
    region = values.stem
    config = next(iter(by_kind(render(values), "ConfigMap").values()))["data"]
    assert config["HOSTSTREAM_REGION"] == region
    assert region in config["HOSTSTREAM_KAFKA_BOOTSTRAP"]


def test_secrets_reach_the_pods_only_through_the_secret() -> None:
    manifests = render()
    config = next(iter(by_kind(manifests, "ConfigMap").values()))["data"]
    (secret,) = by_kind(manifests, "Secret").values()
    assert set(secret["stringData"]) == {"HOSTSTREAM_SQL_DSN", "HOSTSTREAM_API_SECRET"}
    assert not set(secret["stringData"]) & set(config)
    for workload in workloads(manifests):
        env_from = workload["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": secret["metadata"]["name"]}} in env_from


def test_an_existing_secret_replaces_the_charts_own() -> None:
    manifests = render(sets=("existingSecret=platform-hoststream",))
    assert by_kind(manifests, "Secret") == {}
    for workload in workloads(manifests):
        env_from = workload["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "platform-hoststream"}} in env_from

"""The whole pipeline on the secure stack: simulated hosts -> producer -> Kafka (SASL_SSL,
ACLs) -> stream processor (Faust/aiokafka) -> sinks -> VictoriaMetrics (HTTPS, basic auth)
and PostgreSQL (TLS, a role each) -> the API over HTTPS, each component as its own
principal. Afterwards, no secret appears in any log, trace, ``/metrics`` page or
``hoststream stack status``.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from hoststream.api.auth import issue_jwt
from hoststream.kafka import client_config
from hoststream.producers.simulation import SimulatedFleet
from hoststream.stack.jaeger import Jaeger
from hoststream.stack.security import grant_kafka
from tests.support.secure import SecureStack

COMPONENTS = ("producer", "stream", "sink-victoriametrics", "sink-sql", "api")


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(2.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """One `hoststream` sub-command, as its own principal, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hoststream", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def secrets_of(secure: SecureStack, api_secret: str) -> dict[str, str]:
    """Every secret the stack made (passwords), by file name, and the API's signing secret."""
    assert secure.stack.security is not None
    found = {"api-secret": api_secret}
    for path in (secure.stack.security.dir / "secrets").iterdir():
        if not path.name.startswith("sql-dsn"):  # those hold the passwords below
            found[path.name] = path.read_text().strip()
    assert all(len(value) >= 16 for value in found.values())
    return found


def test_the_pipeline_runs_end_to_end_in_secure_mode_and_no_secret_leaks(
    secure_stack: SecureStack, jaeger: Jaeger, unique: str, tmp_path: Path
) -> None:
    prefix = f"{unique}."
    security = secure_stack.stack.security
    assert security is not None
    # Each test has its own topics: grant the components their rights under its prefix.
    admin = AdminClient(client_config(secure_stack.settings(topic_prefix=prefix)))
    grant_kafka(admin, security, prefix)

    seed = random.randrange(10_000, 99_999)
    hosts = list(SimulatedFleet(3, seed=seed).host_ids)
    api_secret_file = tmp_path / "api-secret"
    api_secret = f"api-secret-{random.getrandbits(128):032x}"
    api_secret_file.write_text(api_secret)
    api_port = free_port()
    metrics_ports = {c: free_port() for c in COMPONENTS if c != "api"}
    common = {
        "HOSTSTREAM_TOPIC_PREFIX": prefix,
        "HOSTSTREAM_OTLP_ENDPOINT": jaeger.otlp_endpoint,
        "HOSTSTREAM_LOG_LEVEL": "DEBUG",
    }
    args = {
        "producer": ["produce", "--simulate-hosts", "3", "--seed", str(seed), "--interval", "2"],
        "stream": ["stream", "--windows", "10s,1m", "--grace", "2"],
        "sink-victoriametrics": ["sink", "victoriametrics"],
        "sink-sql": ["sink", "sql"],
        "api": ["api"],
    }
    processes: dict[str, Process] = {}
    metrics_pages: list[str] = []
    for component in COMPONENTS:
        extra = dict(common)
        if component == "api":
            extra |= {
                "HOSTSTREAM_API_PORT": str(api_port),
                "HOSTSTREAM_API_SECRET_FILE": str(api_secret_file),
            }
        else:
            extra["HOSTSTREAM_METRICS_PORT"] = str(metrics_ports[component])
        env = secure_stack.process_env(component, **extra)
        processes[component] = Process(args[component], env, tmp_path / f"{component}.log")

    api_settings = secure_stack.settings("api")
    context = ssl.create_default_context(cafile=str(security.ca_file))
    api = f"https://127.0.0.1:{api_port}"
    token = issue_jwt(SecretStr(api_secret), "secure-test", ["read:metrics"], ttl_s=600)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        # Aggregates in PostgreSQL, read as the API's role (it may SELECT).
        api_dsn = api_settings.sql_dsn.get_secret_value()

        def rows() -> int:
            try:
                with psycopg.connect(api_dsn, connect_timeout=3) as conn:
                    found = conn.execute(
                        "SELECT count(DISTINCT host) FROM window_aggregates "
                        "WHERE host = ANY(%s) AND window_size_ms = 10000",
                        (hosts,),
                    ).fetchone()
                    return int(found[0]) if found else 0
            except psycopg.errors.UndefinedTable:
                return 0

        def all_alive() -> None:
            for component, process in processes.items():
                assert process.alive(), f"{component}: {process.log.read_text()[-3000:]}"

        def stored() -> bool:
            all_alive()  # a component that died will not deliver: say which, at once
            return rows() == len(hosts)

        wait_for(stored, 240, "every host's aggregates in PostgreSQL")

        # Raw samples in VictoriaMetrics, over HTTPS with its password.
        vm = secure_stack.settings("sink-victoriametrics")
        assert vm.vm_password is not None
        auth = (vm.vm_username or "", vm.vm_password.get_secret_value())

        def vm_hosts() -> set[str]:
            response = httpx.get(
                f"{vm.vm_url}/api/v1/query",
                params={"query": f'node_load1{{job="hoststream",instance=~"{"|".join(hosts)}"}}'},
                auth=auth,
                verify=context,
                timeout=10,
            )
            response.raise_for_status()
            return {r["metric"]["instance"] for r in response.json()["data"]["result"]}

        wait_for(lambda: vm_hosts() == set(hosts), 120, "every host's samples in VictoriaMetrics")

        # The API over HTTPS answers from PostgreSQL, VictoriaMetrics and Kafka.
        health = httpx.get(f"{api}/api/v1/health", verify=context, timeout=10)
        assert health.status_code == 200, health.text
        listed = httpx.get(f"{api}/api/v1/hosts", headers=headers, verify=context, timeout=10)
        assert listed.status_code == 200, listed.text
        assert set(hosts) <= {h["host"] for h in listed.json()}
        aggregates = httpx.get(
            f"{api}/api/v1/aggregates",
            params={"host": hosts[0], "metric": "node_load1", "window": "10s"},
            headers=headers,
            verify=context,
            timeout=10,
        )
        assert aggregates.status_code == 200, aggregates.text
        assert aggregates.json()["items"], aggregates.text
        # Plain HTTP to the API's port is no conversation at all.
        try:
            plain = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/health", timeout=5)
        except httpx.HTTPError:
            pass
        else:
            raise AssertionError(f"plain HTTP answered {plain.status_code}")

        for component, port in metrics_ports.items():
            page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            assert "hoststream_certificate_expiry_timestamp_seconds" in page, component
            metrics_pages.append(page)
        metrics_pages.append(httpx.get(f"{api}/metrics", verify=context, timeout=5).text)
        all_alive()
    finally:
        for process in processes.values():
            process.stop()

    # No secret anywhere: component logs (DEBUG), the stack's service logs,
    # /metrics, traces and `hoststream stack status`.
    status = subprocess.run(
        [sys.executable, "-m", "hoststream", "stack", "status"],
        env=secure_stack.process_env(
            "api",
            HOSTSTREAM_STATE_DIR=str(secure_stack.stack.root),
            HOSTSTREAM_LIB_DIR=str(secure_stack.stack.paths.lib),
            HOSTSTREAM_STACK_PORT_OFFSET=str(secure_stack.stack.port_offset),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "kafka" in status.stdout + status.stderr
    traces = [
        httpx.get(
            f"{jaeger.address}/api/traces",
            params={"service": f"hoststream-{component}", "limit": 200, "lookback": "1h"},
            timeout=30,
        ).text
        for component in COMPONENTS
    ]
    assert any(json.loads(t)["data"] for t in traces), "no trace reached Jaeger"
    places = {
        **{f"log {p.log.name}": p.log.read_text(errors="replace") for p in processes.values()},
        **{
            f"stack log {log.name}": log.read_text(errors="replace")
            for log in (secure_stack.stack.root / "logs").glob("*.log")
        },
        **{f"/metrics {i}": page for i, page in enumerate(metrics_pages)},
        **{f"traces {c}": t for c, t in zip(COMPONENTS, traces, strict=True)},
        "stack status": status.stdout + status.stderr,
    }
    leaks = [
        f"{name} in {place}"
        for name, secret in secrets_of(secure_stack, api_secret).items()
        for place, text in places.items()
        if secret in text
    ]
    assert not leaks

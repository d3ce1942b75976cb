"""Start, stop and report the whole local stack, and publish its addresses."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from confluent_kafka.admin import AdminClient

from hoststream.errors import StackError
from hoststream.ports import scrape_targets
from hoststream.stack.alertmanager import ALERTMANAGER_PORT, Alertmanager
from hoststream.stack.base import LocalService, ServiceStatus, StackPaths
from hoststream.stack.jaeger import Jaeger
from hoststream.stack.kafka import KafkaBroker, broker_layout
from hoststream.stack.mirrormaker import MirrorMaker2
from hoststream.stack.postgres import PostgresServer
from hoststream.stack.registry import SchemaRegistry
from hoststream.stack.security import COMPONENTS, StackSecurity, grant_kafka
from hoststream.stack.victorialogs import VICTORIALOGS_PORT, VictoriaLogs
from hoststream.stack.victoriametrics import VictoriaMetrics
from hoststream.stack.vmalert import VMALERT_PORT, VmAlert

__all__ = [
    "ALL_SERVICES",
    "PIPELINE_NEEDS",
    "REGIONS",
    "REGION_PORT_SHIFT",
    "REGION_SERVICES",
    "Stack",
    "service_group",
]

#: Service groups, in start order; ``kafka`` is one or three brokers.
ALL_SERVICES = (
    "postgres",
    "victoriametrics",
    "alertmanager",
    "vmalert",
    "kafka",
    "schema-registry",
    "victorialogs",
    "jaeger",
)

#: What the pipeline needs answering before it starts: the path of the first
#: sample (Kafka, the schema registry, VictoriaMetrics) and PostgreSQL (the SQL
#: sink's database, where the registry keeps its schemas too). Alertmanager,
#: vmalert and the stores built from source join while the pipeline runs.
PIPELINE_NEEDS = ("postgres", "victoriametrics", "kafka", "schema-registry")

#: The regions of ``stack up --regions 2``: the first is this stack itself.
REGIONS = ("region-a", "region-b")
#: What each further region runs: its own stores, nothing shared with the first.
REGION_SERVICES = ("postgres", "victoriametrics", "kafka", "schema-registry")
#: Added to every port of a further region (after HOSTSTREAM_STACK_PORT_OFFSET):
#: none of the first region's ports is one of its ports moved by this much.
REGION_PORT_SHIFT = 2000

VM_PORT = 8428
PG_PORT = 5432
REGISTRY_PORT = 8081
REGISTRY_MANAGEMENT_PORT = 9001
JAEGER_OTLP_HTTP_PORT = 4318
JAEGER_OTLP_GRPC_PORT = 4317
JAEGER_QUERY_PORT = 16686
JAEGER_QUERY_GRPC_PORT = 16685


class Stack:
    """The local services of one state folder.

    Args:
        root: the state folder (``.hoststream`` by default); data, logs, pid files
            and ``stack.env`` live under it.
        lib: where ``make install`` put the Kafka and registry jars.
        brokers: 1, or 3 for a KRaft cluster with replication factor 3.
        services: which service groups to manage (default: all of them).
        port_offset: added to every port, so a second stack (another checkout,
            a CI run) can run beside the first.
        secure: TLS and authentication everywhere (``stack up --secure``, see
            :mod:`hoststream.stack.security`); None: as the running stack was started.
        mutual_tls: Kafka clients present a certificate as well (``--mtls``).
        regions: 2 for a second region (its own Kafka, registry, VictoriaMetrics
            and PostgreSQL, under ``<root>/region-b``, ports moved by
            :data:`REGION_PORT_SHIFT`) and MirrorMaker 2 between the two;
            None: as the running stack was started.
        region: this stack's region name, written to stack.env as
            ``HOSTSTREAM_REGION`` (the regions of a two-region stack set it).
    """

    def __init__(
        self,
        root: Path,
        lib: Path | None = None,
        brokers: int = 1,
        services: Iterable[str] = ALL_SERVICES,
        port_offset: int = 0,
        *,
        secure: bool | None = None,
        mutual_tls: bool = False,
        regions: int | None = None,
        region: str | None = None,
    ) -> None:
        if brokers not in (1, 3):
            raise StackError(f"--brokers must be 1 or 3, not {brokers}")
        unknown = set(services) - set(ALL_SERVICES)
        if unknown:
            raise StackError(f"unknown service {sorted(unknown)[0]!r}; known: {ALL_SERVICES}")
        self.root = root.resolve()
        self.paths = StackPaths(self.root, (lib or self.root / "lib").resolve())
        self.brokers = brokers
        self.groups = [s for s in ALL_SERVICES if s in set(services)]
        self.port_offset = port_offset
        if secure is None:
            state = self._saved_state()
            secure = bool(state.get("secure", False))
            mutual_tls = mutual_tls or bool(state.get("mutual_tls", False))
        self.security = StackSecurity(self.root, mutual_tls) if secure else None
        if regions is None:
            regions = int(str(self._saved_state().get("regions", 1)))
        if regions not in (1, 2):
            raise StackError(f"--regions must be 1 or 2, not {regions}")
        if regions == 2 and (brokers != 1 or secure):
            raise StackError(
                "--regions 2 runs one plaintext broker per region (no --brokers 3, --secure)"
            )
        self.regions = regions
        self.region = region or (REGIONS[0] if regions == 2 else None)

    def other_region(self) -> Stack:
        """The second region of ``--regions 2``: its own stores, beside this stack's."""
        return Stack(
            self.root / REGIONS[1],
            self.paths.lib,
            services=REGION_SERVICES,
            port_offset=self.port_offset + REGION_PORT_SHIFT,
            secure=False,
            regions=1,
            region=REGIONS[1],
        )

    def mirrormaker(self) -> MirrorMaker2:
        """MirrorMaker 2 between this stack's region and the other's."""
        other = self.other_region()
        return MirrorMaker2(
            self.paths,
            {
                REGIONS[0]: self._brokers(1)[0].address,
                REGIONS[1]: other._brokers(1)[0].address,
            },
        )

    def _saved_state(self) -> dict[str, object]:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    @property
    def env_file(self) -> Path:
        return self.root / "stack.env"

    @property
    def _state_file(self) -> Path:
        return self.root / "stack.json"

    def _brokers(self, brokers: int) -> list[KafkaBroker]:
        prefix = "kafka" if brokers == 1 else "kafka-cluster"
        cluster_id = self.paths.data(prefix) / "cluster-id"
        nodes = [
            KafkaBroker(
                self.paths, n, brokers, cluster_id, self.port_offset, security=self.security
            )
            for n, _, _ in broker_layout(brokers)
        ]
        if brokers == 1:
            nodes[0].name = "kafka"
        return nodes

    def services(self, brokers: int | None = None) -> list[LocalService]:
        brokers = brokers or self.brokers
        offset = self.port_offset
        postgres = PostgresServer(self.paths, PG_PORT + offset, self.security)
        result: list[LocalService] = []
        for group in self.groups:
            if group == "postgres":
                result.append(postgres)
            elif group == "victoriametrics":
                result.append(
                    VictoriaMetrics(
                        self.paths, VM_PORT + offset, scrape_targets(offset), self.security
                    )
                )
            elif group == "alertmanager":
                result.append(Alertmanager(self.paths, ALERTMANAGER_PORT + offset))
            elif group == "vmalert" and self.security is None:
                # hoststream's rules about itself, over what VictoriaMetrics scrapes
                # (plaintext stack only: it would need the secure stack's CA and
                # VictoriaMetrics credentials).
                result.append(
                    VmAlert(
                        self.paths,
                        VMALERT_PORT + offset,
                        f"http://127.0.0.1:{VM_PORT + offset}",
                        f"http://127.0.0.1:{ALERTMANAGER_PORT + offset}",
                    )
                )
            elif group == "kafka":
                result.extend(self._brokers(brokers))
            elif group == "schema-registry":
                jdbc = postgres.jdbc_url("apicurio_registry") if "postgres" in self.groups else None
                result.append(
                    SchemaRegistry(
                        self.paths,
                        REGISTRY_PORT + offset,
                        REGISTRY_MANAGEMENT_PORT + offset,
                        jdbc,
                        self.security,
                    )
                )
            elif group == "victorialogs":
                result.append(VictoriaLogs(self.paths, VICTORIALOGS_PORT + offset))
            elif group == "jaeger":
                result.append(
                    Jaeger(
                        self.paths,
                        JAEGER_OTLP_HTTP_PORT + offset,
                        JAEGER_OTLP_GRPC_PORT + offset,
                        JAEGER_QUERY_PORT + offset,
                        JAEGER_QUERY_GRPC_PORT + offset,
                    )
                )
        return result

    def _running_brokers(self) -> int | None:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        brokers = int(state.get("brokers", 1))
        if any(node.running_pid() for node in self._brokers(brokers)):
            return brokers
        return None

    def up(
        self,
        on_service: Callable[[LocalService], None] | None = None,
        *,
        wait_for_builds: bool = True,
        wait_for: Collection[str] | None = None,
        on_ready: Callable[[LocalService, float], None] | None = None,
        restart_outdated: bool = False,
    ) -> dict[str, str]:
        """Start every service that is not running, wait until each answers, write stack.env.

        The services start together (on two cores, the JVMs of Kafka and the
        registry dominate; started one after the other, their start-up times
        add up); only the registry waits, for PostgreSQL, where it keeps its
        schemas.

        Args:
            on_service: called with each service as it starts (from its own thread).
            wait_for_builds: a service whose binary is still to be built from
                source (Jaeger, VictoriaLogs) is built in the background either
                way; True waits for the build and starts it with the rest (tests
                need it), False leaves it out for :meth:`join_built` to start
                once built (`hoststream run`). Its address is in stack.env at
                once: senders retry until it answers.
            wait_for: the service groups to wait for (default: all); the others
                are launched and answer while the caller goes on (`hoststream
                run` waits only for :data:`PIPELINE_NEEDS`).
            on_ready: called with each service once it answers (waited for) or
                runs (the others), and the seconds that took.
            restart_outdated: restart a running service that a better binary
                is installed for now (VictoriaMetrics with vmui, once built);
                False leaves running services alone (a stack others use).
        """
        running = self._running_brokers()
        if "kafka" in self.groups and running is not None and running != self.brokers:
            raise StackError(
                f"the stack in {self.root} runs {running} Kafka broker(s); "
                f"run `hoststream stack down` before starting it with {self.brokers}"
            )
        if running is not None and self._saved_state().get("secure", False) != bool(self.security):
            raise StackError(
                f"the stack in {self.root} runs "
                f"{'with' if self._saved_state().get('secure') else 'without'} --secure; "
                "run `hoststream stack down` before switching"
            )
        saved_regions = int(str(self._saved_state().get("regions", 1)))
        if running is not None and saved_regions != self.regions:
            raise StackError(
                f"the stack in {self.root} runs {saved_regions} region(s); "
                f"run `hoststream stack down` before starting it with {self.regions}"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(
            json.dumps(
                {
                    "brokers": self.brokers,
                    "services": self.groups,
                    "secure": self.security is not None,
                    "mutual_tls": bool(self.security and self.security.mutual_tls),
                    "regions": self.regions,
                }
            )
        )
        if self.security is not None:
            self.security.prepare()
        services = self.services()
        for service in services:
            if restart_outdated and service.outdated():
                service.stop()
        # Builds go first, so they overlap with everything else starting.
        unbuilt = [s for s in services if s.build is not None and not s.build.built()]
        for service in unbuilt:
            assert service.build is not None
            service.build.start()
        waited = set(self.groups if wait_for is None else wait_for)
        # Per group: the service callbacks name, and how to start it.
        starts: dict[str, tuple[LocalService, Callable[[], object]]] = {}
        for service in services:
            group = service_group(service)
            if group in starts or (service in unbuilt and not wait_for_builds):
                continue
            if group == "kafka":
                starts[group] = (service, self._start_brokers)
            elif group in waited:
                starts[group] = (service, service.start)
            else:
                starts[group] = (service, service.launch)
        # The second region starts beside this one, then MirrorMaker 2 between them.
        with ThreadPoolExecutor(1, thread_name_prefix="region") as pool:
            other = (
                pool.submit(
                    self.other_region().up,
                    on_service,
                    wait_for_builds=wait_for_builds,
                    on_ready=on_ready,
                )
                if self.regions == 2
                else None
            )
            self._start_together(starts, on_service, on_ready)
            if other is not None:
                other.result()
        if self.regions == 2:
            mirrormaker = self.mirrormaker()
            if on_service:
                on_service(mirrormaker)
            began = time.monotonic()
            mirrormaker.start()
            if on_ready:
                on_ready(mirrormaker, time.monotonic() - began)
        env = self.environment()
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        if self.security is not None:
            for component in COMPONENTS:
                lines = self.component_environment(component).items()
                path = self.security.dir / f"{component}.env"
                path.write_text("".join(f"{k}={v}\n" for k, v in lines))
        return env

    def _start_brokers(self) -> None:
        """Launch every broker, then wait: none is healthy before a quorum of controllers is up."""
        brokers = self._brokers(self.brokers)
        launched = [(b, b.launch()) for b in brokers]
        for broker, process in launched:
            broker.wait_healthy(process)
        if self.security is not None:
            admin = AdminClient({**brokers[0].client_config(), "log_level": 3})
            grant_kafka(admin, self.security)

    def _start_together(
        self,
        starts: dict[str, tuple[LocalService, Callable[[], object]]],
        on_service: Callable[[LocalService], None] | None,
        on_ready: Callable[[LocalService, float], None] | None,
    ) -> None:
        """Run each group's start in its own thread; raise the first failure in start order."""
        done: dict[str, Future[None]] = {}

        def start(group: str) -> None:
            # Submitted in ALL_SERVICES order: PostgreSQL's future exists by now.
            if group == "schema-registry" and "postgres" in done:
                done["postgres"].result()  # its schemas live in PostgreSQL
            service, run = starts[group]
            if on_service:
                on_service(service)
            began = time.monotonic()
            run()
            if on_ready:
                on_ready(service, time.monotonic() - began)

        with ThreadPoolExecutor(max_workers=len(starts) or 1, thread_name_prefix="stack") as pool:
            for group in starts:
                done[group] = pool.submit(start, group)
            wait(done.values())
        for future in done.values():
            future.result()

    def component_environment(self, component: str) -> dict[str, str]:
        """The settings of one component alone (its principal); empty for a plaintext stack."""
        if self.security is None:
            return {}
        postgres = next((s for s in self.services() if isinstance(s, PostgresServer)), None)
        return self.security.component_env(
            component,
            postgres.port if postgres is not None else None,
            vm="victoriametrics" in self.groups,
        )

    def admin_environment(self) -> dict[str, str]:
        """The brokers' admin user, for tools and tests; empty for a plaintext stack."""
        return self.security.admin_env() if self.security is not None else {}

    def join_built(self) -> list[str]:
        """Launch each service whose background build has finished and that is not running.

        Does not wait for them to answer (``stack status`` shows when they do);
        returns their names.
        """
        joined = []
        for service in self.services():
            build = service.build
            if build is None or service.running_pid() is not None or not build.built():
                continue
            service.launch()
            joined.append(service.name)
        return joined

    def down(self) -> list[str]:
        """Stop every service this stack started (either broker layout); their names."""
        stopped: list[str] = []
        # A second region may run whatever the saved state says: look for it anyway.
        if (self.root / REGIONS[1]).is_dir():
            if self.mirrormaker().stop():
                stopped.append("mirrormaker2")
            stopped += [f"{REGIONS[1]}/{name}" for name in self.other_region().down()]
        seen: set[str] = set()
        for brokers in (1, 3):
            for service in reversed(self.services(brokers)):
                if service.name in seen:
                    continue
                seen.add(service.name)
                if service.stop():
                    stopped.append(service.name)
        self.env_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> list[ServiceStatus]:
        """Each service's status; with two regions, names start with their region."""
        brokers = self._running_brokers() or self.brokers
        own = [service.status() for service in self.services(brokers)]
        if self.regions != 2:
            return own
        other = self.other_region().status()
        return [
            *(dataclasses.replace(s, name=f"{REGIONS[0]}/{s.name}") for s in own),
            *(dataclasses.replace(s, name=f"{REGIONS[1]}/{s.name}") for s in other),
            self.mirrormaker().status(),
        ]

    def environment(self) -> dict[str, str]:
        """The ``HOSTSTREAM_*`` settings that point hoststream at this stack."""
        env: dict[str, str] = {}
        if self.region is not None:
            env["HOSTSTREAM_REGION"] = self.region
        for service in self.services():
            if isinstance(service, KafkaBroker):
                env["HOSTSTREAM_KAFKA_BOOTSTRAP"] = ",".join(
                    b.address for b in self._brokers(self.brokers)
                )
                env["HOSTSTREAM_TOPIC_REPLICATION_FACTOR"] = str(min(3, self.brokers))
            elif isinstance(service, SchemaRegistry):
                env["HOSTSTREAM_SCHEMA_REGISTRY_URL"] = service.address
            elif isinstance(service, VictoriaMetrics):
                env["HOSTSTREAM_VM_URL"] = service.address
            elif isinstance(service, Alertmanager):
                env["HOSTSTREAM_ALERTMANAGER_URL"] = service.address
            elif isinstance(service, PostgresServer) and self.security is None:
                # Secure: each component has its own role, in its own file.
                env["HOSTSTREAM_SQL_DSN"] = service.address
            elif isinstance(service, VictoriaLogs):
                env["HOSTSTREAM_OTLP_LOGS_ENDPOINT"] = service.otlp_logs_endpoint
            elif isinstance(service, Jaeger):
                env["HOSTSTREAM_OTLP_ENDPOINT"] = service.otlp_endpoint
        if self.security is not None:
            ca = str(self.security.ca_file.resolve())
            if "kafka" in self.groups:
                env["HOSTSTREAM_KAFKA_SECURITY_PROTOCOL"] = "SASL_SSL"
                env["HOSTSTREAM_KAFKA_SASL_MECHANISM"] = "SCRAM-SHA-512"
                env["HOSTSTREAM_KAFKA_SSL_CA_LOCATION"] = ca
            env["HOSTSTREAM_TLS_CA_FILE"] = ca
        return env


def service_group(service: LocalService) -> str:
    """The service group (:data:`ALL_SERVICES`) a service belongs to."""
    return "kafka" if isinstance(service, KafkaBroker) else service.name

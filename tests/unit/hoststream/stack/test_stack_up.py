"""`Stack.up` starts the services together: the registry after PostgreSQL, and
the services a caller does not wait for only launched.

Unit tests: stand-in services (a `sleep` process each, healthy once a file
exists) replace the real servers, so the order can be read from what they record.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoststream.stack import Stack
from hoststream.stack.base import LocalService, StackPaths


class StandIn(LocalService):
    """A process that sleeps; healthy once ``release`` is set and it runs."""

    start_timeout_s = 20.0

    def __init__(self, name: str, paths: StackPaths, log: list[str], lock: threading.Lock) -> None:
        super().__init__(name, paths)
        self.release = threading.Event()
        self.log = log
        self.lock = lock

    @property
    def address(self) -> str:
        return "-"

    @property
    def ports(self) -> list[int]:
        return []

    def command(self) -> list[str]:
        with self.lock:
            self.log.append(f"launch {self.name}")
        return [sys.executable, "-c", "import time; time.sleep(60)"]

    def healthy(self) -> bool:
        if not self.release.is_set() or self.running_pid() is None:
            return False
        with self.lock:
            if f"healthy {self.name}" not in self.log:
                self.log.append(f"healthy {self.name}")
        return True


@pytest.fixture
def stand_ins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Stack, dict[str, StandIn]]]:
    log: list[str] = []
    lock = threading.Lock()
    groups = ["postgres", "victoriametrics", "alertmanager", "schema-registry"]
    stack = Stack(tmp_path, services=groups)
    services = {name: StandIn(name, stack.paths, log, lock) for name in groups}
    monkeypatch.setattr(Stack, "services", lambda self, brokers=None: list(services.values()))
    yield stack, services
    for service in services.values():
        service.stop(timeout_s=5)


def test_services_start_together_and_the_registry_waits_for_postgres(
    stand_ins: tuple[Stack, dict[str, StandIn]],
) -> None:
    stack, services = stand_ins
    log = services["postgres"].log
    services["victoriametrics"].release.set()
    services["alertmanager"].release.set()
    services["schema-registry"].release.set()
    # PostgreSQL answers only once VictoriaMetrics has: the others must not wait for it.
    threading.Thread(
        target=lambda: (
            services["victoriametrics"].wait_healthy(),
            services["postgres"].release.set(),
        ),
        daemon=True,
    ).start()
    ready: list[str] = []
    stack.up(on_ready=lambda service, _: ready.append(service.name))
    assert log.index("healthy victoriametrics") < log.index("healthy postgres")
    # The registry keeps its schemas in PostgreSQL: launched only once that answers.
    assert log.index("healthy postgres") < log.index("launch schema-registry")
    assert sorted(ready) == sorted(services)
    assert all(service.running_pid() is not None for service in services.values())


def test_services_not_waited_for_are_launched_and_left_to_answer(
    stand_ins: tuple[Stack, dict[str, StandIn]],
) -> None:
    stack, services = stand_ins
    for name in ("postgres", "victoriametrics", "schema-registry"):
        services[name].release.set()
    # Alertmanager never answers here; up() must return all the same.
    stack.up(wait_for=["postgres", "victoriametrics", "schema-registry"])
    alertmanager = services["alertmanager"]
    assert alertmanager.running_pid() is not None
    assert "launch alertmanager" in alertmanager.log
    assert "healthy alertmanager" not in alertmanager.log

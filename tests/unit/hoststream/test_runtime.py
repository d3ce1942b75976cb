"""The component runtime: /metrics on the component's registry, signals, shutdown, ports."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import Counter

from hoststream.config import Settings
from hoststream.errors import ListenError
from hoststream.runtime import Runtime, bind_socket, run_component

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other process already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def scrape(runtime: Runtime) -> str:
    assert runtime.metrics_address is not None
    host, port = runtime.metrics_address
    return httpx.get(f"http://{host}:{port}/metrics", timeout=5).text


def test_metrics_come_from_the_registry_handed_to_the_component() -> None:
    def body(runtime: Runtime) -> tuple[str, int]:
        Counter("hoststream_test_things", "Things.", registry=runtime.registry).inc(3)
        assert runtime.metrics_address is not None
        return scrape(runtime), runtime.metrics_address[1]

    text, port = run_component("producer", Settings(metrics_port=0), body)
    assert "hoststream_test_things_total 3.0" in text
    assert "process_cpu_seconds_total" in text
    # Closed once the component returned.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_two_components_in_one_process_do_not_share_metrics() -> None:
    def body(runtime: Runtime) -> str:
        Counter("hoststream_test_things", "Things.", registry=runtime.registry).inc()
        return scrape(runtime)

    first = run_component("sink-sql", Settings(metrics_port=0), body)
    second = run_component("sink-sql", Settings(metrics_port=0), body)
    assert "hoststream_test_things_total 1.0" in first
    assert "hoststream_test_things_total 1.0" in second


def test_no_metrics_port_serves_nothing() -> None:
    assert run_component("api", Settings(), lambda runtime: runtime.metrics_address) is None


def test_a_taken_metrics_port_fails_naming_port_and_setting(taken_port: int) -> None:
    ran = []
    with pytest.raises(ListenError) as caught:
        run_component("stream", Settings(metrics_port=taken_port), ran.append)
    assert ran == []
    assert str(caught.value) == (
        f"cannot serve /metrics on 127.0.0.1:{taken_port} (HOSTSTREAM_METRICS_PORT): "
        "Address already in use"
    )


def test_sigterm_sets_stop_and_calls_the_stop_callbacks() -> None:
    before = signal.getsignal(signal.SIGTERM)
    called: list[str] = []

    def body(runtime: Runtime) -> bool:
        runtime.on_stop(lambda: called.append("callback"))
        os.kill(os.getpid(), signal.SIGTERM)
        return runtime.stop.wait(5)

    assert run_component("producer", Settings(), body) is True
    assert called == ["callback"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_callback_registered_after_the_stop_runs_at_once() -> None:
    called: list[str] = []

    def body(runtime: Runtime) -> None:
        runtime.request_stop("test")
        runtime.request_stop("again")
        runtime.on_stop(lambda: called.append("late"))

    run_component("producer", Settings(), body)
    assert called == ["late"]


def test_a_component_whose_port_is_taken_exits_1_with_one_line(taken_port: int) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "HOSTSTREAM_METRICS_PORT": str(taken_port),
        # Never reached: the port fails first.
        "HOSTSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "hoststream", "sink", "sql"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: cannot serve /metrics on 127.0.0.1:{taken_port} (HOSTSTREAM_METRICS_PORT): "
        "Address already in use"
    )


def test_connections_accepted_on_a_bound_socket_send_without_nagles_delay() -> None:
    """asyncio sets TCP_NODELAY only where the listening socket's protocol says TCP."""
    sock = bind_socket("127.0.0.1", 0, "HOSTSTREAM_API_PORT", "the API")
    port = sock.getsockname()[1]
    seen: list[int] = []

    async def exchange() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted = writer.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(serve, sock=sock)
        async with server:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await _reader.read()
            writer.close()

    asyncio.run(exchange())
    assert len(seen) == 1
    assert seen[0] != 0

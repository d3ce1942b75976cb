"""One way to start a long-running component: :func:`run_component`.

The producer, the stream processor, each sink and the API all start here, so
they share one order of start-up and shutdown:

1. logging (console or JSON lines, :mod:`hoststream.telemetry`);
2. tracing (:func:`hoststream.tracing.configure_tracing`, a no-op without an endpoint);
3. a Prometheus registry of the component's own (no metric is registered at
   import time), served at ``/metrics`` on ``HOSTSTREAM_METRICS_PORT``, and
   the certificate files of its settings checked and watched
   (:func:`hoststream.tls.watch_certificates`), and the Kafka password file, whose
   new content the librdkafka clients a component registers with
   :meth:`Runtime.follow_kafka_password` are given
   (:func:`hoststream.secret_files.watch_kafka_password`);
4. SIGTERM and SIGINT, which set :attr:`Runtime.stop` and call the callbacks
   a component with an event loop of its own registered with :meth:`Runtime.on_stop`;
5. the component's body, given the :class:`Runtime`;
6. whatever way the body ends: ``/metrics`` closed, spans and logs flushed,
   the signal handlers of before put back.

A port that cannot be opened (``Address already in use``) is a
:class:`~hoststream.errors.ListenError`: the command exits 1 with one line
naming the port and the setting.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar
from wsgiref.simple_server import WSGIServer

from opentelemetry.trace import Tracer
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from hoststream.errors import ListenError
from hoststream.secret_files import SaslClient, SecretFileWatch, watch_kafka_password
from hoststream.telemetry import configure_logging
from hoststream.tls import watch_certificates
from hoststream.tracing import configure_tracing, shutdown_tracing

if TYPE_CHECKING:
    from hoststream.certificates import CertificateWatch
    from hoststream.config import Settings

__all__ = ["Runtime", "bind_socket", "new_registry", "run_component"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class Runtime:
    """What :func:`run_component` gives a component's body.

    Args:
        component: ``producer``, ``stream``, ``sink-victoriametrics``, ``sink-sql``,
            ``sink-alerts`` or ``api``; names logs, traces and the service.
        settings: the component's settings.
        registry: register every metric of the component here (``registry=``).
        tracer: the component's tracer (the no-op one when tracing is off).
        stop: set when the component should stop (a signal, or :meth:`request_stop`).
    """

    component: str
    settings: Settings
    registry: CollectorRegistry
    tracer: Tracer
    stop: threading.Event = field(default_factory=threading.Event)
    #: Where ``/metrics`` is served, once it is (``None``: not served).
    metrics_address: tuple[str, int] | None = None
    #: The certificate files of the settings, watched (``None``: there are none).
    certificates: CertificateWatch | None = None
    #: The Kafka SASL password file, watched (``None``: the password is not a file).
    kafka_password: SecretFileWatch | None = None
    _callbacks: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a stop is asked (at once if it already was).

        For components whose event loop does not watch :attr:`stop` (Faust's
        worker, uvicorn). Callbacks may run inside a signal handler, on the
        main thread: they should only schedule the stop, not wait for it.
        """
        with self._lock:
            stopped = self.stop.is_set()
            if not stopped:
                self._callbacks.append(callback)
        if stopped:
            callback()

    def follow_kafka_password(self, client: SaslClient) -> None:
        """Give a librdkafka client the new SASL password whenever its file is replaced."""
        if self.kafka_password is not None and self.settings.kafka_sasl_username:
            self.kafka_password.follow(client, self.settings.kafka_sasl_username)

    def request_stop(self, reason: str) -> None:
        """Stop the component gracefully; a second request changes nothing."""
        with self._lock:
            if self.stop.is_set():
                return
            self.stop.set()
            callbacks, self._callbacks = self._callbacks, []
        log.info("%s: stopping (%s)", self.component, reason)
        for callback in callbacks:
            callback()


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and garbage-collector metrics of this process.

    The same series prometheus_client's global registry would have, so a
    dashboard's ``process_cpu_seconds_total`` still finds every component.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def bind_socket(host: str, port: int, setting: str, what: str) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port).

    Raises:
        ListenError: the port is taken or the address is not this machine's;
            the message names ``setting``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol named, not left 0: asyncio turns Nagle's algorithm off
    # (TCP_NODELAY) only on accepted sockets whose protocol says TCP. With it
    # on, a response written as headers then body waited for the client's
    # delayed acknowledgement: about 40 ms on every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ListenError(host, port, setting, what, exc) from exc
    return sock


def _serve_metrics(runtime: Runtime) -> WSGIServer | None:
    port = runtime.settings.metrics_port
    host = runtime.settings.metrics_host
    if port is None:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=runtime.registry)
    except OSError as exc:
        raise ListenError(host, port, "HOSTSTREAM_METRICS_PORT", "/metrics", exc) from exc
    runtime.metrics_address = (host, server.server_port)
    # Printed even at the default level: with port 0 this line is how to find it.
    log.warning("%s: /metrics on http://%s:%d/metrics", runtime.component, host, server.server_port)
    return server


@contextmanager
def _stop_signals(runtime: Runtime) -> Iterator[None]:
    """SIGTERM and SIGINT ask the component to stop; the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        # Only the main thread may set handlers (a component run inside a test's thread).
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        runtime.request_stop(f"received {signal.Signals(signum).name}")

    previous: dict[signal.Signals, Any] = {}
    for signum in _STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_component(
    component: str,
    settings: Settings,
    body: Callable[[Runtime], T],
    *,
    serve_metrics: bool = True,
) -> T:
    """Set up ``component``, run ``body`` until it returns, and shut down in order.

    Args:
        component: the component's name (see :class:`Runtime`).
        settings: its settings: logging, tracing and ``metrics_port``.
        body: the component itself; it returns once :attr:`Runtime.stop` is set
            (or its work is done) and may raise to fail the command.
        serve_metrics: False for a component that serves its registry on a
            port of its own (the API's ``/metrics``).

    Returns:
        What ``body`` returned.

    Raises:
        ListenError: ``/metrics`` could not be served on its port.
    """
    configure_logging(component, settings.log_level, settings.log_format)
    tracer = configure_tracing(settings, component)
    runtime = Runtime(component, settings, new_registry(), tracer)
    metrics_server: WSGIServer | None = None
    try:
        if serve_metrics:
            metrics_server = _serve_metrics(runtime)
        # Before the body connects anywhere: a bad certificate is one line naming its file.
        runtime.certificates = watch_certificates(settings, runtime.registry, runtime.stop)
        runtime.kafka_password = watch_kafka_password(settings, runtime.stop)
        with _stop_signals(runtime):
            return body(runtime)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        # Also when the body ends by raising SystemExit (Faust's worker does):
        # the last spans and log records are exported.
        shutdown_tracing()

"""Running the API under uvicorn, as a component of :mod:`hoststream.runtime`."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from hoststream.api.app import create_app
from hoststream.errors import ConfigurationError
from hoststream.group_lag import GroupLagCollector, hoststream_groups
from hoststream.runtime import Runtime, bind_socket

__all__ = ["run_api"]

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by the component runtime instead of its own signal handlers."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_api(runtime: Runtime) -> None:
    """Serve until the runtime stops it: the body of ``hoststream api``.

    Start it with :func:`hoststream.runtime.run_component` (``serve_metrics=False``:
    the API serves its registry at its own ``/metrics``). It listens on
    ``api_host:api_port``, loopback unless told otherwise; port 0 takes a free
    port, which is logged.

    Raises:
        ListenError: the port is taken.
    """
    settings = runtime.settings
    host, port = settings.api_host, settings.api_port
    try:
        exposed = not ipaddress.ip_address(host).is_loopback
    except ValueError:
        exposed = host != "localhost"
    if exposed:
        log.warning("the API listens on %s, beyond this machine; put TLS in front of it", host)
    # Bound here rather than by uvicorn: a taken port is then one clear error,
    # and port 0 becomes a known one before the first request.
    sock = bind_socket(host, port, "HOSTSTREAM_API_PORT", "the API")
    bound = sock.getsockname()[1]
    cert, key = settings.api_tls_cert_file, settings.api_tls_key_file
    if (cert is None) != (key is None):
        raise ConfigurationError(
            "HOSTSTREAM_API_TLS_KEY_FILE" if key is None else "HOSTSTREAM_API_TLS_CERT_FILE",
            "set both HOSTSTREAM_API_TLS_CERT_FILE and HOSTSTREAM_API_TLS_KEY_FILE, or neither",
        )
    # The pipeline's consumer lag as Kafka sees it, for the self-monitoring rules.
    group_lag = GroupLagCollector(settings, hoststream_groups(settings))
    group_lag.start(runtime.registry)
    config = uvicorn.Config(
        create_app(settings, registry=runtime.registry),
        log_level="warning",
        access_log=False,
        server_header=False,
        # Bounded: slow clients cannot hold connections forever.
        timeout_keep_alive=15,
        limit_concurrency=500,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
    )
    server = _Server(config)
    if cert is not None and key is not None and runtime.certificates is not None:
        config.load()

        def reload_certificate(setting: str) -> None:
            # New connections take the new pair; open ones keep the old one.
            if setting == "HOSTSTREAM_API_TLS_CERT_FILE" and config.ssl is not None:
                config.ssl.load_cert_chain(str(cert), str(key))

        runtime.certificates.on_rotation(reload_certificate)

    def stop() -> None:
        server.should_exit = True

    runtime.on_stop(stop)
    # Printed even at the default level: with port 0 this line is how to find it.
    scheme = "https" if cert else "http"
    log.warning("API on %s://%s:%d (docs at /docs, metrics at /metrics)", scheme, host, bound)
    with sock:
        server.run(sockets=[sock])

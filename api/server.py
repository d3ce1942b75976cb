"""Running the API under uvicorn."""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from hoststream.api.app import create_app
from hoststream.config import Settings

__all__ = ["run_api"]

log = logging.getLogger(__name__)


def run_api(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve until SIGINT/SIGTERM; loopback unless told otherwise."""
    host = host or settings.api_host
    port = port or settings.api_port
    try:
        exposed = not ipaddress.ip_address(host).is_loopback
    except ValueError:
        exposed = host != "localhost"
    if exposed:
        log.warning("the API listens on %s, beyond this machine; put TLS in front of it", host)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        # Bounded: slow clients cannot hold connections forever.
        timeout_keep_alive=15,
        limit_concurrency=500,
    )

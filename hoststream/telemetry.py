"""Logging set-up shared by every component.

``console`` is for people at a terminal; ``json`` writes one object per line
for Loki (via Promtail or Alloy).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["configure_logging", "serve_metrics"]


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(component: str, level: str = "INFO", fmt: str = "console") -> None:
    """Send log records to stderr, as text or as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(component))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {component} %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # librdkafka and aiokafka are chatty at INFO.
    for noisy in ("aiokafka", "kafka", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    """Serve the default Prometheus registry at ``http://host:port/metrics``."""
    if port is None:
        return
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)

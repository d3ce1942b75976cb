"""The ports hoststream's components listen on, on loopback.

`hoststream run` serves each component's Prometheus ``/metrics`` on its port
below and the API on :data:`API_PORT`; every one moves with
``HOSTSTREAM_STACK_PORT_OFFSET``, as the stack's services do, so a second
checkout's pipeline runs beside the first. The local VictoriaMetrics scrapes
them (:func:`scrape_targets`), so the pipeline-health dashboard has data after
`make run`.
"""

from __future__ import annotations

__all__ = ["API_PORT", "COMPONENT_METRICS_PORTS", "scrape_targets"]

#: The API's port (``HOSTSTREAM_API_PORT``'s default), before the offset; it
#: serves its own ``/metrics``.
API_PORT = 8000

#: Each component's ``/metrics`` port under `hoststream run`, before the offset.
COMPONENT_METRICS_PORTS = {
    "producer": 9101,
    "simulator": 9102,
    "stream": 9103,
    "sink-victoriametrics": 9104,
    "sink-sql": 9105,
    "sink-alerts": 9106,
}


def scrape_targets(offset: int) -> dict[str, int]:
    """Component name -> the port of its ``/metrics`` under `hoststream run`, API included."""
    targets = {name: port + offset for name, port in COMPONENT_METRICS_PORTS.items()}
    targets["api"] = API_PORT + offset
    return targets

"""Where `hoststream run` puts each component's Prometheus ``/metrics``, on loopback.

The local VictoriaMetrics scrapes these, so the pipeline-health dashboard has
data after `make run`.
"""

from __future__ import annotations

__all__ = ["COMPONENT_METRICS_PORTS"]

COMPONENT_METRICS_PORTS = {
    "producer": 9101,
    "simulator": 9102,
    "stream": 9103,
    "sink-victoriametrics": 9104,
    "sink-sql": 9105,
    "sink-alerts": 9106,
}

"""The API's own Prometheus metrics, in a registry the caller owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ApiMetrics"]

# From a cached lookup (about a millisecond) to a slow PromQL query.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ApiMetrics:
    """Requests, their latency and refused authentications.

    Args:
        registry: where to register; one :class:`ApiMetrics` per registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "hoststream_api_requests_total",
            "API requests answered.",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "hoststream_api_request_seconds",
            "API request latency.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.auth_failures = Counter(
            "hoststream_api_auth_failures_total",
            "Requests refused with 401: no bearer token (missing) or one that does not verify"
            " (invalid).",
            ["reason"],
            registry=registry,
        )
        self.auth_throttled = Counter(
            "hoststream_api_auth_throttled_total",
            "Requests refused with 429 because their client address failed to authenticate"
            " too often.",
            registry=registry,
        )

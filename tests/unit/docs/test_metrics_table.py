"""docs/observability.md's table of Prometheus metrics against what each component registers."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from hoststream.api.metrics import ApiMetrics
from hoststream.certificates import CertificateWatch
from hoststream.config import Settings
from hoststream.group_lag import GroupLagCollector
from hoststream.producers.publisher import PublisherMetrics
from hoststream.sinks.alerts.routing import parse_routes
from hoststream.sinks.alerts.sink import AlertSink
from hoststream.sinks.metrics import SinkMetrics
from hoststream.streams.metrics import StreamMetrics
from tests.support.doubles.alerts import Receiver
from tests.support.metrics_table import MetricRow, documented_metrics


def registered(registry: CollectorRegistry, prefix: str = "hoststream_") -> dict[str, MetricRow]:
    """Name as scraped -> (type, labels) of every hoststream metric in ``registry``."""
    found: dict[str, MetricRow] = {}
    # prometheus_client has no public way to list a registry's collectors with
    # their label names (a labelled metric shows no labels before first use).
    for collector in registry._collector_to_names:
        name = getattr(collector, "_name", "")
        if not name.startswith(prefix):
            continue
        kind = collector._type
        scraped = f"{name}_total" if kind == "counter" else name
        found[scraped] = MetricRow(kind, tuple(collector._labelnames))
    return found


def alert_sink_metrics() -> dict[str, MetricRow]:
    registry = CollectorRegistry()
    sink = AlertSink(
        parse_routes(
            "default:\n  receivers: [alertmanager]\n", "r.yaml", available=["alertmanager"]
        ),
        {"alertmanager": Receiver()},
        registry=registry,
    )
    sink.close()
    return registered(registry, "hoststream_alert_")


def api_metrics() -> dict[str, MetricRow]:
    found = registered(_with(ApiMetrics), "hoststream_api_")
    # The API also serves every consumer group's lag, from a collector of its own
    # (never started here: it would ask Kafka).
    collector = GroupLagCollector(Settings(), {}, admin=object())
    for family in collector.collect():
        found[family.name] = MetricRow(family.type, tuple(family._labelnames))
    return found


COMPONENTS = {
    "producer": lambda: registered(_with(PublisherMetrics)),
    "stream": lambda: registered(_with(StreamMetrics)),
    "sinks": lambda: registered(_with(lambda r: SinkMetrics(r, "victoriametrics"))),
    "alerts sink": alert_sink_metrics,
    "api": api_metrics,
    "certificates": lambda: registered(
        _with(lambda r: CertificateWatch({}, r)), "hoststream_certificate_"
    ),
}


def _with(factory) -> CollectorRegistry:
    registry = CollectorRegistry()
    factory(registry)
    return registry


def test_the_table_names_every_component() -> None:
    assert set(documented_metrics()) == set(COMPONENTS)


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_the_table_matches_the_registered_metrics(component: str) -> None:
    documented = documented_metrics()[component]
    assert COMPONENTS[component]() == documented

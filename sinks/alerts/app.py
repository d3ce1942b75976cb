"""Entry points: build the alert sink's consumer loop from the settings, and run it.

``hoststream sink alerts`` runs :func:`run_alert_sink` through
:func:`hoststream.runtime.run_component`; tests may call
:func:`build_alert_sink` and drive the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.errors import ConfigurationError
from hoststream.kafka import consumer_config
from hoststream.runtime import Runtime
from hoststream.schemas import AlertEvent, codec_for, registry_client_for
from hoststream.schemas.validation import Validator
from hoststream.sinks.alerts.alertmanager import AlertmanagerRouter
from hoststream.sinks.alerts.opsgenie import OpsgenieRouter
from hoststream.sinks.alerts.pagerduty import PagerDutyRouter
from hoststream.sinks.alerts.router import Router
from hoststream.sinks.alerts.routing import DEFAULT_ROUTES_FILE, RoutingTable, load_routes
from hoststream.sinks.alerts.sink import AlertSink, DeliveryPolicy
from hoststream.sinks.consumer import BatchPolicy, SinkConsumer
from hoststream.sinks.decoding import TopicDecoder
from hoststream.sinks.dlq import DeadLetterQueue
from hoststream.sinks.metrics import SinkMetrics
from hoststream.topics import alerts_topic, sink_group

__all__ = [
    "ALERT_POLICY",
    "build_alert_sink",
    "build_routers",
    "default_alert_group",
    "load_routing",
    "run_alert_sink",
    "unconfigured_receivers",
]

log = logging.getLogger(__name__)

#: Alerts are few and urgent: small batches, written at once.
ALERT_POLICY = BatchPolicy(max_records=100, max_delay_s=0.1)


def default_alert_group(settings: Settings) -> str:
    """``<prefix>hoststream-sink-alerts``, like the other sinks' groups."""
    return sink_group(settings, "alerts")


def build_routers(settings: Settings) -> dict[str, Router]:
    """One router per receiver the settings configure, under its routing-file name."""
    routers: dict[str, Router] = {}
    if settings.pagerduty_routing_key is not None:
        routers["pagerduty"] = PagerDutyRouter(
            settings.pagerduty_routing_key, settings.pagerduty_url
        )
    if settings.opsgenie_api_key is not None:
        routers["opsgenie"] = OpsgenieRouter(settings.opsgenie_api_key, settings.opsgenie_url)
    if settings.alertmanager_url is not None:
        routers["alertmanager"] = AlertmanagerRouter(
            settings.alertmanager_url, generator_base_url=settings.vm_url
        )
    return routers


def unconfigured_receivers(settings: Settings) -> dict[str, str]:
    """Receivers the settings leave unconfigured -> the setting that would configure each."""
    wanted = {
        "pagerduty": ("HOSTSTREAM_PAGERDUTY_ROUTING_KEY", settings.pagerduty_routing_key),
        "opsgenie": ("HOSTSTREAM_OPSGENIE_API_KEY", settings.opsgenie_api_key),
        "alertmanager": ("HOSTSTREAM_ALERTMANAGER_URL", settings.alertmanager_url),
    }
    return {name: setting for name, (setting, value) in wanted.items() if value is None}


def load_routing(
    settings: Settings, available: Sequence[str], routes_file: Path | None = None
) -> RoutingTable:
    """The routing file given (or ``HOSTSTREAM_ALERT_ROUTES_FILE``), else the built-in one.

    A file of the user's must name only configured receivers; the built-in file
    leaves out the ones that are not configured.

    Raises:
        ConfigurationError: no receiver is configured, or the file is invalid
            (:class:`~hoststream.errors.RoutingFileError` names its line).
    """
    if not available:
        raise ConfigurationError(
            "HOSTSTREAM_ALERTMANAGER_URL",
            "no alert receiver is configured; set it, HOSTSTREAM_PAGERDUTY_ROUTING_KEY "
            "or HOSTSTREAM_OPSGENIE_API_KEY",
        )
    path = routes_file or settings.alert_routes_file
    missing = {k: v for k, v in unconfigured_receivers(settings).items() if k not in available}
    if path is None:
        return load_routes(
            DEFAULT_ROUTES_FILE, available=available, unavailable=missing, strict=False
        )
    return load_routes(path, available=available, unavailable=missing, strict=True)


def build_alert_sink(
    settings: Settings,
    *,
    registry: CollectorRegistry,
    group_id: str | None = None,
    topics: Sequence[str] | None = None,
    policy: BatchPolicy | None = None,
    routes_file: Path | None = None,
    routers: Mapping[str, Router] | None = None,
    delivery: DeliveryPolicy | None = None,
) -> SinkConsumer[AlertEvent]:
    """A ready consumer loop for the alert sink; call ``.run(stop)`` on it.

    The routing file is read and checked first, so a bad one stops the sink
    before it joins its consumer group.

    Args:
        settings: hoststream's settings (Kafka, registry, receivers' URLs and keys).
        registry: where the sink's Prometheus metrics are registered.
        group_id: the consumer group (default: :func:`default_alert_group`).
        topics: topics to consume (default: ``<prefix>alerts``).
        policy: batch limits (default: :data:`ALERT_POLICY`).
        routes_file: the routing file (default: ``HOSTSTREAM_ALERT_ROUTES_FILE``,
            else ``sinks/alerts/default_routes.yaml``).
        routers: receivers by name (default: :func:`build_routers`).
        delivery: retries within one write (default: :class:`DeliveryPolicy`).

    Raises:
        ConfigurationError: no receiver configured, or an invalid routing file.
    """
    routers = dict(routers) if routers is not None else build_routers(settings)
    routes = load_routing(settings, list(routers), routes_file)
    unused = sorted(set(routers) - routes.receivers)
    if unused:
        log.warning("receiver(s) %s are configured but no route names them", unused)
    topic = alerts_topic(settings)
    decoder = TopicDecoder(
        {topic: codec_for(settings, AlertEvent, client=registry_client_for(settings)).deserializer}
    )
    sink = AlertSink(routes, routers, policy=delivery, registry=registry)
    consumer = Consumer(consumer_config(settings, group_id or default_alert_group(settings)))
    return SinkConsumer(
        consumer,
        list(topics) if topics is not None else [topic],
        sink=sink,
        decoder=decoder,
        dead_letters=DeadLetterQueue.from_settings(settings, sink.name),
        metrics=SinkMetrics(registry, sink.name),
        policy=policy or ALERT_POLICY,
        validator=Validator.from_settings(settings),
    )


def run_alert_sink(
    runtime: Runtime,
    *,
    group_id: str | None = None,
    routes_file: Path | None = None,
    policy: BatchPolicy | None = None,
) -> None:
    """Run the alert sink until ``runtime.stop`` is set: the body of ``hoststream sink alerts``.

    Start it with :func:`hoststream.runtime.run_component`. On stop the current
    batch is delivered and committed (within the shutdown timeout), then the
    consumer leaves its group.

    Args:
        runtime: the component's runtime: settings, metrics registry, stop event.
        group_id: the consumer group (default: :func:`default_alert_group`).
        routes_file: the routing file (default: ``HOSTSTREAM_ALERT_ROUTES_FILE``,
            else the built-in one).
        policy: batch limits (default: :data:`ALERT_POLICY`).

    Raises:
        ConfigurationError: no receiver configured, or an invalid routing file.
    """
    loop = build_alert_sink(
        runtime.settings,
        registry=runtime.registry,
        group_id=group_id,
        routes_file=routes_file,
        policy=policy,
    )
    log.info("sink alerts consuming %s", alerts_topic(runtime.settings))
    loop.run(runtime.stop)

"""Alert routing: ``alerts`` events to PagerDuty, Opsgenie and Alertmanager.

Start with :mod:`sinks.alerts.router` (the contract a receiver implements),
then :mod:`sinks.alerts.routing` (the routing file), :mod:`sinks.alerts.sink`
(ordering, retries, dead letters) and one module per receiver.
:func:`run_alert_sink` is what ``hoststream sink alerts`` calls.
"""

from hoststream.sinks.alerts.alertmanager import AlertmanagerRouter, alertmanager_alert
from hoststream.sinks.alerts.app import (
    ALERT_POLICY,
    build_alert_sink,
    build_routers,
    default_alert_group,
    load_routing,
    run_alert_sink,
)
from hoststream.sinks.alerts.opsgenie import OpsgenieRouter, opsgenie_close, opsgenie_create
from hoststream.sinks.alerts.pagerduty import PagerDutyRouter, pagerduty_event
from hoststream.sinks.alerts.router import Router
from hoststream.sinks.alerts.routing import Route, RoutingTable, load_routes, parse_routes
from hoststream.sinks.alerts.sink import AlertSink, DeliveryPolicy

__all__ = [
    "ALERT_POLICY",
    "AlertSink",
    "AlertmanagerRouter",
    "DeliveryPolicy",
    "OpsgenieRouter",
    "PagerDutyRouter",
    "Route",
    "Router",
    "RoutingTable",
    "alertmanager_alert",
    "build_alert_sink",
    "build_routers",
    "default_alert_group",
    "load_routes",
    "load_routing",
    "opsgenie_close",
    "opsgenie_create",
    "pagerduty_event",
    "parse_routes",
    "run_alert_sink",
]

"""Entry point: build the producer from the settings and run it until stopped.

``hoststream produce`` runs :func:`run_agent` through
:func:`hoststream.runtime.run_component`: this host's collectors (or a
simulated fleet), the metric topics, the publisher with its metrics in the
component's registry, and the aligned loop of :func:`producers.agent.run_producer`.
"""

from __future__ import annotations

from hoststream.errors import ConfigurationError
from hoststream.producers.agent import (
    EventSource,
    HostEvents,
    ProducerReport,
    collectors_for,
    create_metric_topics,
    run_producer,
)
from hoststream.producers.publisher import EventPublisher, PublisherMetrics
from hoststream.runtime import Runtime
from hoststream.schemas import MetricEvent, serializer_for
from hoststream.tracing import tracing_enabled

__all__ = ["event_source", "run_agent"]


def event_source(runtime: Runtime) -> EventSource:
    """This host's collectors, or the simulated fleet the settings ask for.

    Raises:
        ConfigurationError: a speed-up without simulated hosts.
    """
    settings = runtime.settings
    if not settings.simulate_hosts:
        if settings.simulate_speedup != 1.0:
            raise ConfigurationError(
                "HOSTSTREAM_SIMULATE_SPEEDUP", "is for simulated hosts only (--simulate-hosts)"
            )
        return HostEvents(
            collectors_for(settings),
            settings.host_id,
            settings.host_labels,
            region=settings.region,
        )
    from hoststream.producers.simulation import FleetBatches, SimulatedFleet

    return FleetBatches(
        SimulatedFleet(settings.simulate_hosts, seed=settings.simulate_seed, region=settings.region)
    )


def run_agent(runtime: Runtime, duration_s: float | None = None) -> ProducerReport:
    """Collect and publish until the runtime stops it or ``duration_s`` passes.

    On stop, what is buffered is flushed (up to the flush timeout); the report
    says how much was not acknowledged.
    """
    settings = runtime.settings
    if settings.simulate_processes > 1:
        if not settings.simulate_hosts:
            raise ConfigurationError(
                "HOSTSTREAM_SIMULATE_PROCESSES", "is for simulated hosts only (--simulate-hosts)"
            )
        from hoststream.producers.fleet_processes import run_fleet_processes

        return run_fleet_processes(runtime, duration_s)
    source = event_source(runtime)
    create_metric_topics(settings, source.families)
    metrics = PublisherMetrics(runtime.registry)
    metrics.known_families(source.families)
    publisher = EventPublisher(
        settings,
        serializer_for(settings, MetricEvent),
        metrics,
        # A simulation ahead of the clock: messages stamped when produced.
        event_timestamps=settings.simulate_speedup == 1.0,
        # A fleet's tens of thousands of messages a second: no report per success.
        error_reports_only=bool(settings.simulate_hosts),
    )
    runtime.follow_kafka_password(publisher.kafka_client)
    return run_producer(
        settings,
        source,
        publisher,
        runtime.stop,
        interval_s=settings.collect_interval_s,
        speedup=settings.simulate_speedup,
        duration_s=duration_s,
        # Load tests want a steady rate, not one burst a tick.
        pace=bool(settings.simulate_hosts),
        tracer=runtime.tracer if tracing_enabled() else None,
    )

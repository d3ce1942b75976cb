"""A simulated fleet shared among processes (``hoststream produce --processes N``).

One Python process simulates, encodes and produces on one CPU. With
``--processes N`` the command forks N workers before any Kafka client exists;
worker ``k`` simulates the hosts ``k, k + N, k + 2N, ...`` with its own
librdkafka producer. A host's events depend only on (seed, host, instant), so
the fleet's output is the same whatever N is. The parent creates the topics,
serves ``/metrics`` with the workers' counters added up, passes a stop on to
them, and sums their reports.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from dataclasses import fields
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as ProcessEvent
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from hoststream.errors import HoststreamError
from hoststream.producers.agent import ProducerReport, create_metric_topics, run_producer
from hoststream.producers.publisher import EventPublisher, PublisherMetrics
from hoststream.producers.simulation import FleetBatches, SimulatedFleet
from hoststream.runtime import Runtime
from hoststream.schemas import MetricEvent, serializer_for

__all__ = ["combine_reports", "run_fleet_processes", "shard"]

log = logging.getLogger(__name__)

#: How often a worker sends its counters to the parent's ``/metrics``.
_METRICS_PERIOD_S = 1.0
#: The publisher's counters the parent adds up, by name in its registry.
_COUNTERS = ("produced", "samples", "dropped", "failed", "invalid_samples")


def shard(hosts: int, worker: int, workers: int) -> range:
    """The host indices worker ``worker`` (0-based) of ``workers`` simulates."""
    return range(worker, hosts, workers)


def combine_reports(reports: list[ProducerReport]) -> ProducerReport:
    """One report for workers that ran side by side: counts add up, time is the longest."""
    total = ProducerReport()
    for report in reports:
        for item in fields(ProducerReport):
            name = item.name
            if name in ("ticks", "skipped_ticks", "elapsed_seconds"):
                setattr(total, name, max(getattr(total, name), getattr(report, name)))
            else:
                setattr(total, name, getattr(total, name) + getattr(report, name))
    return total


def run_fleet_processes(runtime: Runtime, duration_s: float | None) -> ProducerReport:
    """Run ``settings.simulate_processes`` workers until they end or a stop is asked.

    Raises:
        HoststreamError: a worker failed (its error, or its exit status).
    """
    settings = runtime.settings
    workers = settings.simulate_processes
    # Fork before this process makes any librdkafka client: librdkafka's
    # threads do not survive a fork. The workers wait until the topics exist.
    context = multiprocessing.get_context("fork")
    go = context.Event()
    pipes: list[Connection] = []
    processes = []
    for worker in range(workers):
        parent_end, child_end = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker,
            args=(runtime, worker, go, child_end, duration_s),
            name=f"hoststream-fleet-{worker}",
            daemon=True,
        )
        process.start()
        child_end.close()
        pipes.append(parent_end)
        processes.append(process)
    metrics = PublisherMetrics(runtime.registry)
    try:
        families = SimulatedFleet(0).families
        metrics.known_families(families)
        create_metric_topics(settings, families)
        go.set()
        return _supervise(runtime, processes, pipes, metrics)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(5)


def _supervise(
    runtime: Runtime,
    processes: list[Any],
    pipes: list[Connection],
    metrics: PublisherMetrics,
) -> ProducerReport:
    """Add up the workers' counters until each has reported; pass a stop on."""
    reports: dict[int, ProducerReport] = {}
    last: dict[int, dict[tuple[str, tuple[str, ...]], float]] = {}
    buffered: dict[int, float] = {}
    stopped = False
    while len(reports) < len(pipes):
        if runtime.stop.is_set() and not stopped:
            stopped = True
            for process in processes:
                if process.pid is not None and process.is_alive():
                    process.terminate()  # SIGTERM: the worker flushes and reports
        for worker, pipe in enumerate(pipes):
            if worker in reports:
                continue
            try:
                while worker not in reports and pipe.poll(0):
                    kind, payload = pipe.recv()
                    if kind == "metrics":
                        counters, queued = payload
                        _add_counters(metrics, last.setdefault(worker, {}), counters)
                        buffered[worker] = queued
                    elif kind == "report":
                        reports[worker] = payload
                    else:
                        raise HoststreamError(f"simulated fleet worker {worker}: {payload}")
            except EOFError:
                processes[worker].join(5)
                raise HoststreamError(
                    f"simulated fleet worker {worker} exited "
                    f"{processes[worker].exitcode} without a report"
                ) from None
        metrics.buffered.set(sum(buffered.values()))
        runtime.stop.wait(0.2)
    return combine_reports([reports[worker] for worker in range(len(pipes))])


def _add_counters(
    metrics: PublisherMetrics,
    seen: dict[tuple[str, tuple[str, ...]], float],
    counters: dict[tuple[str, tuple[str, ...]], float],
) -> None:
    for key, value in counters.items():
        delta = value - seen.get(key, 0.0)
        if delta > 0:
            name, labels = key
            getattr(metrics, name).labels(*labels).inc(delta)
        seen[key] = value


def _counter_values(metrics: PublisherMetrics) -> dict[tuple[str, tuple[str, ...]], float]:
    values: dict[tuple[str, tuple[str, ...]], float] = {}
    for name in _COUNTERS:
        for family in getattr(metrics, name).collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    values[(name, tuple(sample.labels.values()))] = sample.value
    return values


def _worker(
    runtime: Runtime,
    worker: int,
    go: ProcessEvent,
    conn: Connection,
    duration_s: float | None,
) -> None:
    """One share of the fleet, in a forked process: produce, then send the report."""
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
    settings = runtime.settings
    sender: threading.Thread | None = None
    try:
        while not go.wait(0.5):
            if stop.is_set():
                conn.send(("report", ProducerReport()))
                return
        fleet = SimulatedFleet(
            settings.simulate_hosts, seed=settings.simulate_seed, region=settings.region
        )
        source = FleetBatches(
            fleet, shard(settings.simulate_hosts, worker, settings.simulate_processes)
        )
        metrics = PublisherMetrics(CollectorRegistry())
        publisher = EventPublisher(
            settings,
            serializer_for(settings, MetricEvent),
            metrics,
            # A simulation ahead of the clock: messages stamped when produced.
            event_timestamps=settings.simulate_speedup == 1.0,
            error_reports_only=True,
        )
        sender = threading.Thread(
            target=_send_metrics, args=(conn, metrics, publisher, stop), daemon=True
        )
        sender.start()
        report = run_producer(
            settings,
            source,
            publisher,
            stop,
            interval_s=settings.collect_interval_s,
            speedup=settings.simulate_speedup,
            duration_s=duration_s,
            pace=True,
        )
        stop.set()
        sender.join()
        conn.send(("metrics", (_counter_values(metrics), publisher.buffered())))
        conn.send(("report", report))
    except Exception as exc:  # the parent reports it and stops the other workers
        log.exception("simulated fleet worker %d failed", worker)
        stop.set()
        if sender is not None:
            sender.join()  # one thread sends at a time: a Connection is not thread-safe
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _send_metrics(
    conn: Connection, metrics: PublisherMetrics, publisher: EventPublisher, stop: threading.Event
) -> None:
    while not stop.wait(_METRICS_PERIOD_S):
        with contextlib.suppress(OSError):
            conn.send(("metrics", (_counter_values(metrics), publisher.buffered())))

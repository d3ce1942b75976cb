"""Alert sink benchmark: 10,000 alert events a minute routed to local fake receivers.

The bench starts a fake PagerDuty (enforcing PagerDuty's documented limit of
120 events per routing key over the 60 s before each request, answering 429
beyond it), a fake Opsgenie and a fake Alertmanager on loopback ports, in a
process of their own (as real receivers would not share the sink's CPU), then
produces alert events to a topic of its own at an even 10,000 a minute for
one minute while hoststream's alert sink (``build_alert_sink``, the consumer
loop included, the built-in routing) delivers them. Half the events are
FIRING, half the RESOLVED of an earlier FIRING; 1 % of the alerts are
critical (PagerDuty, Opsgenie, Alertmanager), 30 % error or warning
(Opsgenie, Alertmanager), the rest info (Alertmanager).

The fake PagerDuty also answers its first ``INJECTED_429S`` requests with
429 (no ``Retry-After``), as when another sender shares the routing key, so
the router's hold and backoff on 429 are part of the run.

It reports deliveries per minute, loss (deliveries the routes call for that
never arrived; must be 0), duplicates, the 429s PagerDuty answered, and the
latency from producing an event to the receiver's acceptance, p50 and p99.
``BENCH_SCALE`` scales the minute (and so the event count, not the rate).
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import unquote

from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from bench.common import Result, bar_plot, code_version, load_note, scale, settings_for
from bench.workload import delete_subjects, delete_topics
from hoststream.kafka import TopicSpec, ensure_topics, producer_config
from hoststream.schemas import AlertEvent, AlertState, codec_for
from hoststream.sinks.alerts import (
    AlertmanagerRouter,
    OpsgenieRouter,
    PagerDutyRouter,
    build_alert_sink,
)
from hoststream.sinks.alerts.pagerduty import EVENTS_PER_MINUTE
from hoststream.topics import alerts_topic
from tests.support.doubles import FakeOpsgenie, FakePagerDuty
from tests.support.doubles.http import FakeHttpServer, Reply

EVENTS_PER_MIN = 10_000
SECONDS = 60.0
CAP_S = 240.0
INJECTED_429S = 3
PD_KEY = "B3nchR0ut1ngK3y00000000000000042"
GENIE_KEY = "bench-genie-key-0000-000000000042"
#: Receivers of each severity under the built-in routing (sinks/alerts/default_routes.yaml).
ROUTED = {
    "critical": ("pagerduty", "opsgenie", "alertmanager"),
    "error": ("opsgenie", "alertmanager"),
    "warning": ("opsgenie", "alertmanager"),
    "info": ("alertmanager",),
}

Delivery = tuple[str, str, str]  # (receiver, dedup key, FIRING | RESOLVED)


class _Accepted:
    """What the fakes accepted: delivery -> monotonic times of each acceptance."""

    def __init__(self) -> None:
        self.times: dict[Delivery, list[float]] = {}
        self.lock = threading.Lock()

    def add(self, delivery: Delivery) -> None:
        now = time.monotonic()  # one clock for every process of the machine
        with self.lock:
            self.times.setdefault(delivery, []).append(now)


class _PagerDuty(FakePagerDuty):
    def __init__(self, accepted: _Accepted) -> None:
        super().__init__(events_per_window=EVENTS_PER_MINUTE, window_s=60.0)
        self._accepted = accepted

    def handle(self, method, path, query, headers, body) -> Reply:  # type: ignore[no-untyped-def]
        reply = super().handle(method, path, query, headers, body)
        if reply.status == 202:
            event = json.loads(body)
            state = "FIRING" if event["event_action"] == "trigger" else "RESOLVED"
            self._accepted.add(("pagerduty", event["dedup_key"], state))
        return reply


class _Opsgenie(FakeOpsgenie):
    def __init__(self, accepted: _Accepted) -> None:
        super().__init__(GENIE_KEY)
        self._accepted = accepted

    def handle(self, method, path, query, headers, body) -> Reply:  # type: ignore[no-untyped-def]
        reply = super().handle(method, path, query, headers, body)
        if reply.status == 202:
            if path.endswith("/close"):
                alias = path.removeprefix("/v2/alerts/").removesuffix("/close")
                self._accepted.add(("opsgenie", unquote(alias), "RESOLVED"))
            else:
                self._accepted.add(("opsgenie", json.loads(body)["alias"], "FIRING"))
        return reply


class _Alertmanager(FakeHttpServer):
    """Alertmanager's ``POST /api/v2/alerts``: 200 for a list of alerts."""

    def __init__(self, accepted: _Accepted) -> None:
        super().__init__()
        self._accepted = accepted

    def handle(self, method, path, query, headers, body) -> Reply:  # type: ignore[no-untyped-def]
        if method != "POST" or path != "/api/v2/alerts":
            return Reply(404, {"message": "not found"})
        # hoststream sends a FIRING alert with endsAt a day ahead, a RESOLVED
        # one with the moment it ended.
        soon = datetime.now(UTC) + timedelta(hours=1)
        for alert in json.loads(body):
            ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
            state = "FIRING" if ends > soon else "RESOLVED"
            self._accepted.add(("alertmanager", alert["labels"]["bench_key"], state))
        return Reply(200, None)


def _serve_receivers(conn: Connection) -> None:
    """Run the three fakes until told to stop; report what they accepted when asked."""
    accepted = _Accepted()
    with (
        _PagerDuty(accepted) as pagerduty,
        _Opsgenie(accepted) as opsgenie,
        _Alertmanager(accepted) as alertmanager,
    ):
        pagerduty.fail_next(INJECTED_429S, 429)
        conn.send(
            {
                "pagerduty": pagerduty.enqueue_url,
                "opsgenie": opsgenie.url,
                "alertmanager": alertmanager.url,
            }
        )
        while conn.recv() == "report":
            with accepted.lock:
                times = {d: list(t) for d, t in accepted.times.items()}
            requests = {
                "pagerduty": len(pagerduty.requests),
                "opsgenie": len(opsgenie.requests),
                "alertmanager": len(alertmanager.requests),
            }
            answered_429 = sum(1 for r in pagerduty.requests if r.status == 429)
            conn.send((times, (pagerduty.throttled, answered_429), requests))


def _severity(i: int) -> str:
    """1 % critical, 15 % error, 15 % warning, the rest info."""
    n = i % 100
    if n == 0:
        return "critical"
    if n <= 15:
        return "error"
    if n <= 30:
        return "warning"
    return "info"


def _alert(key: str, severity: str, state: AlertState, now_ms: int, starts_ms: int) -> AlertEvent:
    return AlertEvent(
        dedup_key=key,
        rule="BenchLoad",
        state=state,
        severity=severity,
        host=f"bench-{key[-3:]}",
        metric="node_load1",
        value=12.5 if state is AlertState.FIRING else 3.0,
        threshold=8.0,
        starts_at=starts_ms,
        window_end=now_ms if state is AlertState.RESOLVED else starts_ms,
        event_time=now_ms,
        ends_at=now_ms if state is AlertState.RESOLVED else None,
        labels={"bench_key": key, "team": "bench"},
        annotations={"summary": f"bench alert {key}"},
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(env: dict[str, str]) -> list[Result]:
    seconds = SECONDS * scale()
    events = int(EVENTS_PER_MIN * seconds / 60)
    keys = events // 2
    prefix = f"benchalr{uuid.uuid4().hex[:6]}."
    settings = settings_for(env, topic_prefix=prefix)
    topic = alerts_topic(settings)
    ensure_topics(settings, [TopicSpec(topic, 6, settings.topic_replication_factor)])
    accepted = _Accepted()
    produced_at: dict[tuple[str, str], float] = {}
    expected: set[Delivery] = set()
    parent, child = multiprocessing.get_context("spawn").Pipe()
    receivers = multiprocessing.get_context("spawn").Process(
        target=_serve_receivers, args=(child,), daemon=True
    )
    receivers.start()
    urls = parent.recv()
    routers = {
        "pagerduty": PagerDutyRouter(SecretStr(PD_KEY), urls["pagerduty"]),
        "opsgenie": OpsgenieRouter(SecretStr(GENIE_KEY), urls["opsgenie"]),
        "alertmanager": AlertmanagerRouter(
            urls["alertmanager"], generator_base_url=settings.vm_url
        ),
    }
    loop = build_alert_sink(
        settings,
        registry=CollectorRegistry(),
        group_id=f"{prefix}alerts",
        topics=[topic],
        routers=routers,
    )
    stop = threading.Event()
    sink_thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    sink_thread.start()
    cpu_started = time.process_time()
    try:
        started = _produce(settings, topic, keys, produced_at, expected)
        deadline = time.monotonic() + CAP_S
        while time.monotonic() < deadline and sink_thread.is_alive():
            parent.send("report")
            times, throttled, requests = parent.recv()
            if expected <= times.keys():
                break
            time.sleep(1.0)
        finished = time.monotonic()
        cpu_s = time.process_time() - cpu_started
    finally:
        stop.set()
        sink_thread.join(60)
        parent.send("report")
        times, throttled, requests = parent.recv()
        parent.send("stop")
        receivers.join(10)
    accepted.times = times
    delete_topics(settings, [topic, f"{topic}.dlq"])
    delete_subjects(settings, prefix)

    delivered = expected & accepted.times.keys()
    lost = len(expected - delivered)
    duplicates = sum(len(t) - 1 for d, t in accepted.times.items() if d in expected)
    latencies: dict[str, list[float]] = {}
    for receiver, key, state in delivered:
        first = min(accepted.times[(receiver, key, state)])
        latencies.setdefault(receiver, []).append(first - produced_at[(key, state)])
    every = [v for values in latencies.values() for v in values]
    first = min((min(t) for d, t in accepted.times.items() if d in expected), default=started)
    last = max((min(t) for d, t in accepted.times.items() if d in expected), default=finished)
    took_s = max(last, started + 1e-9) - started
    per_receiver = {
        receiver: {
            "deliveries": len(values),
            "latency_p50_ms": round(_percentile(values, 0.5) * 1000, 1),
            "latency_p99_ms": round(_percentile(values, 0.99) * 1000, 1),
            "requests": requests[receiver],
        }
        for receiver, values in sorted(latencies.items())
    }
    figures = {
        "events_produced": events,
        "events_per_min_offered": EVENTS_PER_MIN,
        "deliveries_expected": len(expected),
        "deliveries": len(delivered),
        # From the first event produced to the last delivery: start-up and
        # the stall of the injected 429s included.
        "events_per_min_end_to_end": events / took_s * 60 if lost == 0 else None,
        # From the first delivery to the last: the rate the sink delivered at.
        "events_per_min_delivered": events / max(1e-9, last - first) * 60 if lost == 0 else None,
        "deliveries_per_min": len(delivered) / max(1e-9, last - first) * 60,
        "seconds_first_produce_to_first_delivery": round(first - started, 1),
        "lost": lost,
        "duplicates": duplicates,
        "pagerduty_429s": throttled[1],
        "pagerduty_429s_injected": INJECTED_429S,
        "pagerduty_429s_for_its_rate_limit": throttled[0],
        "latency_p10_ms": round(_percentile(every, 0.1) * 1000, 1),
        "latency_p50_ms": round(_percentile(every, 0.5) * 1000, 1),
        "latency_p99_ms": round(_percentile(every, 0.99) * 1000, 1),
        "seconds_first_produce_to_last_delivery": round(took_s, 1),
        # This process: the alert sink and the producer (the receivers run apart).
        "bench_process_cpu_s": round(cpu_s, 1),
        "events_per_cpu_s": round(events / cpu_s, 1),
        "by_receiver": per_receiver,
    }
    print(f"alerts: {figures}", flush=True)
    result = Result(
        "alerts",
        "alert sink routing 10,000 alert events a minute to fake PagerDuty, Opsgenie and "
        "Alertmanager receivers (local HTTP servers); PagerDuty's limit of "
        f"{EVENTS_PER_MINUTE} events per routing key and minute enforced by the fake",
        f"{events:,} AlertEvents ({keys:,} alerts, FIRING then RESOLVED) over {seconds:.0f}s, "
        "Avro via the schema registry, 6 partitions",
        figures=figures,
        ratios={"alert_events_delivered_vs_offered": (len(delivered) / max(1, len(expected)))},
        notes=[
            "events_per_min_delivered: the events over the time from the first delivery to the "
            "last; events_per_min_end_to_end: over the time from the first event produced to the "
            "last delivery (the sink's start and the stall of the injected 429s included); "
            "latency: from producing an event to the fake receiver's acceptance (2xx); "
            "deliveries: (receiver, dedup key, state) triples the built-in routing calls for; "
            "lost: expected triples never accepted; duplicates: accepted more than once; "
            f"pagerduty_429s: every 429 the fake PagerDuty answered: the first {INJECTED_429S} "
            "requests on purpose, and any event beyond its rate limit "
            "(pagerduty_429s_for_its_rate_limit); "
            "bench_process_cpu_s: CPU time of the process running the alert sink and the "
            "producer, not the receivers",
            "severities: 1 % critical (PagerDuty, Opsgenie, Alertmanager), 15 % error and 15 % "
            "warning (Opsgenie, Alertmanager), the rest info (Alertmanager)",
            f"scale {scale():g} (BENCH_SCALE); {load_note()}; {code_version()}",
        ],
    )
    bar_plot(
        "alerts",
        "Alert sink: deliveries accepted per minute, by receiver",
        list(per_receiver),
        [v["deliveries"] / max(1e-9, last - first) * 60 for v in per_receiver.values()],
        "deliveries per minute",
    )
    return [result]


def _produce(
    settings: Any,
    topic: str,
    keys: int,
    produced_at: dict[tuple[str, str], float],
    expected: set[Delivery],
) -> float:
    """Produce ``keys`` FIRING and as many RESOLVED events at an even rate; return the start."""
    serializer = codec_for(settings, AlertEvent).serializer
    producer = Producer(producer_config(settings))
    ctx = SerializationContext(topic, MessageField.VALUE)
    interval = 60.0 / EVENTS_PER_MIN
    # Each alert resolves 30 s (or half the run) of events after it fired.
    lag = min(keys, int(30 / interval / 2))
    started = time.monotonic()
    starts: dict[str, int] = {}
    order: list[tuple[int, AlertState]] = []
    fired = resolved = 0
    while fired < keys or resolved < keys:
        if fired < keys and (fired - resolved < lag or resolved >= keys):
            order.append((fired, AlertState.FIRING))
            fired += 1
        else:
            order.append((resolved, AlertState.RESOLVED))
            resolved += 1
    for n, (i, state) in enumerate(order):
        due = started + n * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        key = f"bench-{i:06d}"
        severity = _severity(i)
        now_ms = int(time.time() * 1000)
        starts_ms = starts.setdefault(key, now_ms)
        alert = _alert(key, severity, state, now_ms, starts_ms)
        producer.produce(topic, key=key.encode(), value=serializer(alert, ctx))
        producer.poll(0)
        produced_at[(key, state.value)] = time.monotonic()
        for receiver in ROUTED[severity]:
            expected.add((receiver, key, state.value))
    producer.flush(30)
    return started

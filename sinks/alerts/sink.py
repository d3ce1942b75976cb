"""The alert sink: routes each alert event to its receivers, in order, losing none.

It plugs into the generic consumer loop (:class:`sinks.consumer.SinkConsumer`),
so offsets are committed only after every alert of a batch reached every
receiver it is routed to, or was refused for good and dead-lettered.

- Order: events of one dedup key are sent one after the other, in offset
  order; a RESOLVED never reaches a receiver before its FIRING did. Different
  keys go in parallel, and a receiver that is down holds up no other.
- Transient failures (no answer, 429, 5xx) are retried here a few times with
  exponential backoff and jitter; if the receiver is still failing, the batch
  fails with :class:`~hoststream.errors.SinkUnavailableError` and the loop pauses,
  backs off and hands the same batch back. Deliveries that already succeeded
  are remembered and not repeated (they would be harmless, being idempotent,
  but a receiver that is up should not be flooded while another is down).
- Permanent failures (other 4xx) make the record a
  :class:`~hoststream.dead_letters.Rejection`: it goes to ``alerts.dlq`` with the receiver
  and its answer in the headers; the other receivers still get the alert.

Tracing: the consumer loop's ``write alerts`` span is current while a batch is
delivered; each delivery to a receiver is a ``deliver <receiver>`` child span
with its attempts and outcome (none when tracing is off).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import Span, SpanKind
from prometheus_client import CollectorRegistry, Counter

from hoststream.dead_letters import Rejection
from hoststream.errors import (
    InvalidRecordError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SinkBackpressureError,
    SinkUnavailableError,
)
from hoststream.schemas import AlertEvent
from hoststream.sinks.alerts.router import Router
from hoststream.sinks.alerts.routing import RoutingTable
from hoststream.sinks.base import BatchingSink, SinkRecord
from hoststream.sinks.retry import Backoff
from hoststream.tracing import get_tracer, tracing_enabled

__all__ = ["AlertSink", "DeliveryPolicy"]

log = logging.getLogger(__name__)

#: (topic, partition, offset): identifies a record across retries of its batch.
_RecordId = tuple[str, int, int]


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard one delivery is retried before the batch is handed back to the loop.

    Args:
        attempts: tries per receiver and alert within one batch write.
        initial_s: the first delay between tries.
        max_s: the longest delay between tries.
        max_retry_after_s: a ``Retry-After`` longer than this is not waited
            out here: the batch fails at once and the consumer loop (which
            keeps the group membership alive) waits instead.
        concurrency: dedup keys delivered at the same time.
    """

    attempts: int = 3
    initial_s: float = 0.5
    max_s: float = 5.0
    max_retry_after_s: float = 10.0
    concurrency: int = 32


@dataclass
class _Outcome:
    """What happened to one record in this write."""

    refused: list[str] = field(default_factory=list)
    retry: RetryableDeliveryError | None = None


#: The outcomes of one delivery, the ``outcome`` label of the delivery counter.
OUTCOMES = ("sent", "retried", "refused")


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None, receivers: Iterable[str]) -> None:
        self._deliveries = Counter(
            "hoststream_alert_deliveries",
            "Alert deliveries by receiver and outcome (sent, retried, refused).",
            ["receiver", "outcome"],
            registry=registry,
        )
        # Every receiver's outcomes exist from the start, at zero.
        for receiver in receivers:
            for outcome in OUTCOMES:
                self._deliveries.labels(receiver, outcome)

    def count(self, receiver: str, outcome: str) -> None:
        self._deliveries.labels(receiver, outcome).inc()


class AlertSink(BatchingSink[AlertEvent]):
    """Delivers alert events to the receivers their routes name.

    Args:
        routes: the routing table (see :func:`sinks.alerts.routing.load_routes`).
        routers: one router per receiver name used by ``routes``.
        policy: retries within one write (default: :class:`DeliveryPolicy`).
        registry: where the per-receiver delivery counter is registered
            (None: a registry of its own, for tests).
        sleep: waits between retries; tests pass a fake one.
    """

    name = "alerts"

    def __init__(
        self,
        routes: RoutingTable,
        routers: Mapping[str, Router],
        *,
        policy: DeliveryPolicy | None = None,
        registry: CollectorRegistry | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        missing = sorted(routes.receivers - set(routers))
        if missing:
            raise ValueError(f"no router for receiver(s) {missing} named by the routes")
        self._routes = routes
        self._routers = dict(routers)
        self._policy = policy or DeliveryPolicy()
        self._metrics = _Metrics(
            registry if registry is not None else CollectorRegistry(),
            sorted(router.name for router in self._routers.values()),
        )
        self._sleep = sleep
        # Routers hold async HTTP clients, which are bound to one event loop:
        # the sink keeps its own for its whole life and runs it in write().
        self._loop = asyncio.new_event_loop()
        # Progress of the batch being written, kept across its retries.
        self._delivered: set[tuple[_RecordId, str]] = set()
        self._refused: dict[_RecordId, list[str]] = {}

    def check(self, value: AlertEvent) -> None:
        if not value.dedup_key:
            raise InvalidRecordError("an alert event without a dedup_key cannot be routed")

    def write(
        self, batch: Sequence[SinkRecord[AlertEvent]]
    ) -> Sequence[Rejection[SinkRecord[Any]]]:
        outcomes = self._loop.run_until_complete(self._write(batch))
        retries = [o.retry for o in outcomes.values() if o.retry is not None]
        if retries:
            waits = [r.retry_after for r in retries if r.retry_after is not None]
            first = retries[0]
            reason = f"{len(retries)} alert(s) not delivered yet, e.g. {first}"
            if waits:
                raise SinkBackpressureError(max(waits), reason)
            raise SinkUnavailableError(reason)
        rejections = [
            Rejection(record, "; ".join(self._refused[_id(record)]), "AlertDeliveryRefused")
            for record in batch
            if _id(record) in self._refused
        ]
        # The batch is done and will be committed: nothing of it is retried again.
        self._delivered.clear()
        self._refused.clear()
        return rejections

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._loop.run_until_complete(self._close_routers())
        finally:
            self._loop.close()

    async def _close_routers(self) -> None:
        await asyncio.gather(*(r.aclose() for r in self._routers.values()))

    # -- delivery ------------------------------------------------------------

    async def _write(self, batch: Sequence[SinkRecord[AlertEvent]]) -> dict[_RecordId, _Outcome]:
        by_key: dict[str, list[SinkRecord[AlertEvent]]] = {}
        for record in batch:
            by_key.setdefault(record.decoded.dedup_key, []).append(record)
        outcomes: dict[_RecordId, _Outcome] = {}
        gate = asyncio.Semaphore(self._policy.concurrency)

        async def in_order(records: list[SinkRecord[AlertEvent]]) -> None:
            # A receiver that failed an event of this key gets none of the
            # key's later events in this write, so a RESOLVED cannot reach it
            # before its FIRING; the other receivers go on.
            blocked: dict[str, RetryableDeliveryError] = {}
            async with gate:
                for record in records:
                    outcomes[_id(record)] = await self._deliver(record, blocked)

        await asyncio.gather(*(in_order(records) for records in by_key.values()))
        return outcomes

    async def _deliver(
        self, record: SinkRecord[AlertEvent], blocked: dict[str, RetryableDeliveryError]
    ) -> _Outcome:
        alert = record.decoded
        record_id = _id(record)
        outcome = _Outcome()
        todo: list[str] = []
        for name in self._routes.receivers_for(alert):
            if (record_id, name) in self._delivered:
                continue
            if name in blocked:
                outcome.retry = outcome.retry or blocked[name]
                continue
            todo.append(name)
        results = await asyncio.gather(
            *(self._send(self._routers[name], alert) for name in todo), return_exceptions=True
        )
        for name, result in zip(todo, results, strict=True):
            if result is None:
                self._delivered.add((record_id, name))
            elif isinstance(result, PermanentDeliveryError):
                # Not tried again; the record is dead-lettered once the batch is done.
                self._delivered.add((record_id, name))
                self._refused.setdefault(record_id, []).append(str(result))
                log.error(
                    "%s refused alert %s (%s): %s; it goes to the dead-letter topic",
                    name,
                    alert.dedup_key,
                    alert.state.value,
                    result.reason,
                )
            elif isinstance(result, RetryableDeliveryError):
                blocked[name] = result
                outcome.retry = outcome.retry or result
            else:
                raise result
        return outcome

    async def _send(self, router: Router, alert: AlertEvent) -> None:
        # The task running this copied the context of the batch's span, so the
        # delivery's span is its child and the log lines below carry its ids.
        with _delivery_span(router.name, alert) as span:
            policy = self._policy
            backoff = Backoff(initial_s=policy.initial_s, max_s=policy.max_s)
            for attempt in range(1, policy.attempts + 1):
                if span is not None:
                    span.set_attribute("hoststream.alert.attempts", attempt)
                try:
                    await router.send(alert)
                except PermanentDeliveryError:
                    self._metrics.count(router.name, "refused")
                    raise
                except RetryableDeliveryError as exc:
                    self._metrics.count(router.name, "retried")
                    wait = exc.retry_after or 0.0
                    if attempt == policy.attempts or wait > policy.max_retry_after_s:
                        raise
                    delay = backoff.next_delay(wait)
                    log.warning(
                        "%s: alert %s: %s; retry %d in %.1fs",
                        router.name,
                        alert.dedup_key,
                        exc.reason,
                        attempt,
                        delay,
                    )
                    await self._sleep(delay)
                else:
                    self._metrics.count(router.name, "sent")
                    log.info(
                        "%s: alert %s %s sent", router.name, alert.dedup_key, alert.state.value
                    )
                    return


def _delivery_span(receiver: str, alert: AlertEvent) -> AbstractContextManager[Span | None]:
    """A CLIENT span for delivering ``alert`` to ``receiver``; nothing when tracing is off."""
    if not tracing_enabled():
        return nullcontext(None)
    return get_tracer().start_as_current_span(
        f"deliver {receiver}",
        kind=SpanKind.CLIENT,
        attributes={
            "hoststream.alert.receiver": receiver,
            "hoststream.alert.dedup_key": alert.dedup_key,
            "hoststream.alert.state": alert.state.value,
        },
    )


def _id(record: SinkRecord[AlertEvent]) -> _RecordId:
    return (record.topic, record.partition, record.offset)

"""A sink's consumer loop wired to the in-memory doubles of ``doubles/kafka.py``, for unit tests.

Each test hands in its own sink and decoder (a ``RecordingSink`` and an
``IntDecoder``, or subclasses of them) and drives the loop one step at a time
on a fake clock.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from hoststream.sinks.base import BatchingSink
from hoststream.sinks.consumer import BatchPolicy, SinkConsumer
from hoststream.sinks.dlq import DeadLetterQueue
from hoststream.sinks.metrics import SinkMetrics
from hoststream.sinks.retry import Backoff
from tests.support.doubles.clock import FakeClock
from tests.support.doubles.kafka import FakeConsumer, FakeProducer, IntDecoder

SinkT = TypeVar("SinkT", bound=BatchingSink[Any])
DecoderT = TypeVar("DecoderT", bound=IntDecoder)


class SinkLoopRig(Generic[SinkT, DecoderT]):
    """A subscribed ``SinkConsumer`` named "recording" over in-memory partitions.

    Args:
        logs: each partition's messages, keyed by (topic, partition).
        sink: the sink the loop writes to.
        decoder: turns message values into the sink's records.
        max_records: records per batch.
        max_delay_s: age of a batch's first record before it is written anyway.
    """

    def __init__(
        self,
        logs: dict[tuple[str, int], list[Message]],
        *,
        sink: SinkT,
        decoder: DecoderT,
        max_records: int = 4,
        max_delay_s: float = 1.0,
    ) -> None:
        self.clock = FakeClock()
        self.consumer = FakeConsumer(self.clock, logs)
        self.producer = FakeProducer()
        self.sink = sink
        self.decoder = decoder
        self.registry = CollectorRegistry()
        self.loop = SinkConsumer(
            self.consumer,
            sorted({t for t, _ in logs}),
            sink=self.sink,
            decoder=self.decoder,
            dead_letters=DeadLetterQueue(self.producer, "recording"),
            metrics=SinkMetrics(self.registry, "recording"),
            policy=BatchPolicy(max_records=max_records, max_delay_s=max_delay_s),
            # rand() == 1.0: every retry waits its full ceiling, so tests can name the delays.
            backoff=Backoff(initial_s=1.0, max_s=8.0, rand=lambda: 1.0),
            clock=self.clock,
            sleep=self.clock.sleep,
        )
        self.loop.subscribe()

    def steps(self, n: int) -> None:
        for _ in range(n):
            self.loop.step()

    def metric(self, name: str, **labels: str) -> float:
        """The sink's sample ``name`` with ``labels``; 0 when it was never set."""
        value = self.registry.get_sample_value(name, {"sink": "recording", **labels})
        return 0.0 if value is None else value


def values(*ints: int) -> list[bytes]:
    """Message values the ``IntDecoder`` turns back into ``ints``."""
    return [str(i).encode() for i in ints]

"""Dead letters: a record refused for good, and the headers that say why.

A rejected record goes to ``<source topic>.dlq``
(:func:`hoststream.topics.dead_letter_topic`) with its original key, value and
headers, plus the ``hoststream.dlq.*`` headers below. The stream processor and
every sink write the same headers, so one tool reads every dead letter.

With tracing on, the dead letter's ``traceparent`` is replaced by the one of
the span it is sent from, which links to the original's parent: the trace
shows the failed step, and through its link the producer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from hoststream.tracing import MessageHeaders, inject_traceparent

__all__ = [
    "HEADER_ERROR",
    "HEADER_ERROR_CLASS",
    "HEADER_FAILED_AT",
    "HEADER_SINK",
    "HEADER_SOURCE_OFFSET",
    "HEADER_SOURCE_PARTITION",
    "HEADER_SOURCE_TOPIC",
    "MAX_REASON_BYTES",
    "Position",
    "Rejection",
    "SourcePosition",
    "dead_letter_headers",
]

HEADER_ERROR = "hoststream.dlq.error"
HEADER_ERROR_CLASS = "hoststream.dlq.error.class"
HEADER_SOURCE_TOPIC = "hoststream.dlq.source.topic"
HEADER_SOURCE_PARTITION = "hoststream.dlq.source.partition"
HEADER_SOURCE_OFFSET = "hoststream.dlq.source.offset"
#: The component that refused the record: a sink's name, or ``streams``.
HEADER_SINK = "hoststream.dlq.sink"
HEADER_FAILED_AT = "hoststream.dlq.failed.at.ms"

#: A reason is for people reading the topic; a multi-kilobyte traceback would
#: only bloat every dead letter.
MAX_REASON_BYTES = 2000

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Rejection(Generic[R]):
    """A record refused for good, and why; it goes to the dead-letter topic.

    Args:
        record: what was refused (a sink's record, the stream processor's message).
        reason: a sentence for the people reading the dead-letter topic.
        error_class: a short name of the kind of failure, e.g. the exception's class.
    """

    record: R
    reason: str
    error_class: str = "InvalidRecordError"


class SourcePosition(Protocol):
    """Where a rejected message was read (a sink's record is one)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Position:
    """A :class:`SourcePosition` for messages that do not carry one; offset -1 when unknown."""

    topic: str
    partition: int
    offset: int = -1


def dead_letter_headers(
    original: Iterable[tuple[str, str | bytes | None]],
    rejection: Rejection[Any],
    source: SourcePosition,
    component: str,
) -> MessageHeaders:
    """The original headers, the ``hoststream.dlq.*`` ones, and the current span's traceparent.

    Args:
        original: the rejected message's own headers.
        rejection: why it was refused; the reason is cut to :data:`MAX_REASON_BYTES`.
        source: the topic, partition and offset it was read from.
        component: who refused it (``streams`` or the sink's name).
    """
    reason = rejection.reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]
    return inject_traceparent(
        [
            *original,
            (HEADER_ERROR, reason),
            (HEADER_ERROR_CLASS, rejection.error_class.encode()),
            (HEADER_SOURCE_TOPIC, source.topic.encode()),
            (HEADER_SOURCE_PARTITION, str(source.partition).encode()),
            (HEADER_SOURCE_OFFSET, str(source.offset).encode()),
            (HEADER_SINK, component.encode()),
            (HEADER_FAILED_AT, str(time.time_ns() // 1_000_000).encode()),
        ]
    )

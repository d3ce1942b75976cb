"""A TEST DOUBLE of a Faust event's message, for unit tests of the stream processor only."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Message:
    """What the batch processor reads of a message: topic, partition, value and headers."""

    topic: str
    partition: int
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

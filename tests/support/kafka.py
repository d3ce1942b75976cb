"""Reading test topics back, for assertions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from confluent_kafka import Consumer, Message

from hoststream.config import Settings
from hoststream.kafka import consumer_config


def drain(
    settings: Settings,
    topics: Iterable[str],
    expected: int | None = None,
    idle_s: float = 5.0,
    timeout_s: float = 90.0,
) -> list[Message]:
    """Every message of ``topics`` from the start.

    Reads until ``expected`` messages arrived or, without it, until none came for ``idle_s``.
    """
    consumer = Consumer(consumer_config(settings, f"drain-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe(list(topics))
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(messages) >= expected:
                break
            if expected is None and messages and time.monotonic() - last > idle_s:
                break
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
            last = time.monotonic()
    finally:
        consumer.close()
    return messages

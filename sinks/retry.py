"""Exponential backoff with jitter, for retrying a batch while its destination is down."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``, with "equal jitter".

    Half of each delay is fixed and half random, so many sinks that lost the
    same database do not all come back at the same instant, yet none retries
    at once in a tight loop.

    Args:
        initial_s: the first delay.
        max_s: the longest delay.
        multiplier: growth factor between attempts.
        rand: source of uniform numbers in [0, 1); tests pass a fixed one.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    rand: Callable[[], float] = field(default=random.random, repr=False)
    attempts: int = 0

    def next_delay(self, at_least_s: float = 0.0) -> float:
        """The delay before the next attempt; never shorter than ``at_least_s``."""
        ceiling = min(self.max_s, self.initial_s * self.multiplier**self.attempts)
        self.attempts += 1
        delay = ceiling / 2 + self.rand() * ceiling / 2
        return max(delay, at_least_s)

    def reset(self) -> None:
        """Start from ``initial_s`` again, after a success."""
        self.attempts = 0

"""Per-token rate limits: a token bucket per principal, refilled continuously."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allows ``limit`` requests per minute per subject, in bursts of up to ``limit``.

    Args:
        clock: monotonic seconds; replaced in tests.
        max_subjects: buckets kept at most; the least recently used are forgotten.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_subjects: int = 100_000
    ) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._max_subjects = max_subjects

    def acquire(self, subject: str, limit_per_minute: int) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        rate = limit_per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(subject, (float(limit_per_minute), now))
            tokens = min(float(limit_per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[subject] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[subject] = (tokens, now)
                wait = (1.0 - tokens) / rate
            if len(self._buckets) > self._max_subjects:
                # dicts keep insertion order and each use re-inserts: drop the oldest.
                self._buckets.pop(next(iter(self._buckets)))
        return wait

    @staticmethod
    def retry_after(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))

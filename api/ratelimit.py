"""Per-token rate limits: a token bucket per principal, refilled continuously."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["AuthFailureThrottle", "RateLimiter"]


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
        return self._take(subject, limit_per_minute, consume=True)

    def wait_for(self, subject: str, limit_per_minute: int) -> float:
        """What :meth:`acquire` would answer now, without using up a request."""
        return self._take(subject, limit_per_minute, consume=False)

    def _take(self, subject: str, limit_per_minute: int, *, consume: bool) -> float:
        rate = limit_per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(subject, (float(limit_per_minute), now))
            tokens = min(float(limit_per_minute), tokens + (now - last) * rate)
            if not consume:
                self._buckets[subject] = (tokens, now)
                wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
            elif tokens >= 1.0:
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


class AuthFailureThrottle:
    """Slows down guessing: failed authentications per client address, in a token bucket.

    Each failure uses up one of ``failures_per_minute`` (a burst of as many is
    allowed); an address with none left is refused, before its token is even
    checked, until the bucket refills. Checking first means a correct guess
    is no faster to find than a wrong one.

    Args:
        failures_per_minute: failed authentications an address may make per minute.
        limiter: the buckets; replaced in tests (e.g. for a fake clock).
    """

    def __init__(self, failures_per_minute: int = 30, limiter: RateLimiter | None = None) -> None:
        self._limit = failures_per_minute
        self._limiter = limiter if limiter is not None else RateLimiter()

    def wait_for(self, address: str) -> float:
        """0 if ``address`` may try to authenticate, else the seconds until it may."""
        return self._limiter.wait_for(address, self._limit)

    def failed(self, address: str) -> None:
        """Count one failed authentication of ``address``."""
        self._limiter.acquire(address, self._limit)

"""A receiver's rate limit per key: a sliding window of sends, and a hold after a 429.

PagerDuty's Events API v2 takes about 120 events per minute per routing key,
counted over the 60 seconds before each request; beyond that it answers 429
and drops the event. The router asks :meth:`RateLimit.delay` before each send,
so a burst is spread out instead of being refused, and calls
:meth:`RateLimit.throttled` on a 429 (another sender sharing the key, or a
restart that forgot the window), which holds every send of the key for the
answer's ``Retry-After``, or else a backoff that doubles with each 429 in a row.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable

from hoststream.sinks.retry import Backoff

__all__ = ["RateLimit"]


class RateLimit:
    """At most ``limit`` sends in any ``window_s`` seconds, and none while held after a 429.

    One instance per key; it is used from one event loop (no locking).

    Args:
        limit: sends allowed in a window.
        window_s: the window's length, seconds.
        hold_initial_s: the first hold after a 429 without ``Retry-After``.
        hold_max_s: the longest hold.
        clock: monotonic seconds; tests pass a fake one.
        rand: jitter source of the hold's backoff (``Backoff``); tests pass a fixed one.
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        hold_initial_s: float = 1.0,
        hold_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"a rate limit needs limit >= 1 and window_s > 0: {limit}, {window_s}")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sent: deque[float] = deque()
        self._held_until = 0.0
        self._backoff = Backoff(initial_s=hold_initial_s, max_s=hold_max_s, rand=rand)

    def delay(self) -> float:
        """Seconds until the next send is allowed; 0 when it is allowed now."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()
        wait = self._held_until - now
        if len(self._sent) >= self.limit:
            wait = max(wait, self._sent[0] + self.window_s - now)
        return max(0.0, wait)

    def take(self) -> None:
        """Count a send made now (call it right after :meth:`delay` returned 0)."""
        self._sent.append(self._clock())

    def accepted(self) -> None:
        """The receiver accepted a send: the next 429 starts the hold from the beginning."""
        self._backoff.reset()

    def throttled(self, retry_after: float | None) -> float:
        """The receiver answered 429: hold every send; returns the hold, seconds.

        The receiver's ``Retry-After`` when it sent one, else a backoff that
        doubles with each 429 in a row.
        """
        hold = retry_after if retry_after is not None else self._backoff.next_delay()
        self._held_until = max(self._held_until, self._clock() + hold)
        return hold

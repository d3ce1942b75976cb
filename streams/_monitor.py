"""Faust's monitor without its bookkeeping per message, event and table access.

Faust's :class:`~faust.sensors.Monitor` is called for every message in and
out, every event a stream takes and finishes, and every table read and
write: counters, timings, per-topic and per-stream tallies, kept for its web
views and metrics exporters, neither of which the worker runs. Per message
that came to a few percent of the worker's time. :class:`LeanMonitor` keeps
what Faust and hoststream read: the committed offsets (``on_tp_commit``,
which the timers use), the end offsets, commit and send latencies, the
assignment figures, and the time each partition last delivered an event
(the aiokafka driver's check for a stalled stream reads it).
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors.monitor import Monitor
from faust.types import TP, CollectionT, EventT, Message, StreamT

__all__ = ["LeanMonitor"]


class LeanMonitor(Monitor):
    """A :class:`~faust.sensors.Monitor` that records nothing per message, event or table key."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT[Any],
        event: EventT[Any],
        state: dict[str, Any] | None = None,
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        pass

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        pass

    def on_table_del(self, table: CollectionT, key: Any) -> None:
        pass

"""Noticing VictoriaMetrics change data it accepted with a 204.

VictoriaMetrics drops a series' labels past ``-maxLabelsPerTimeseries``
(newer releases leave such a row out, ``vm_rows_ignored_total{reason="too_many_labels"}``),
truncates label values past ``-maxLabelValueLen`` and skips rows outside its
time range, all without an error in the response. The validation contract
(docs/validation.md) keeps such records out of every batch; where it still
happens (a VictoriaMetrics started with lower limits, another writer), its
own counters on ``/metrics`` grow. :class:`DroppedDataWatch` reads them now
and then, and reports every increase, so a change is never silent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx

__all__ = ["DROP_COUNTERS", "DroppedDataWatch"]

log = logging.getLogger(__name__)

#: VictoriaMetrics' counters of data it changed or left out after accepting it.
DROP_COUNTERS = (
    "vm_metrics_with_dropped_labels_total",
    "vm_too_long_label_names_total",
    "vm_too_long_label_values_total",
    "vm_rows_ignored_total",
)


def _parse(text: str) -> dict[str, float]:
    """The drop counters of a Prometheus exposition, by name with labels."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(DROP_COUNTERS):
            continue
        name, _, value = line.rpartition(" ")
        try:
            found[name] = float(value)
        except ValueError:
            continue
    return found


class DroppedDataWatch:
    """Reports increases of VictoriaMetrics' drop counters, at most every ``interval_s``.

    Args:
        url: VictoriaMetrics' base URL (``HOSTSTREAM_VM_URL``); its ``/metrics``
            is read (for a cluster, the vminsert's).
        client: the HTTP client to read with.
        on_drop: called with each counter that grew and by how much.
        interval_s: the shortest time between two reads.
        clock: monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self,
        url: str,
        client: httpx.Client,
        *,
        on_drop: Callable[[str, float], None] | None = None,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = str(httpx.URL(url).copy_with(path="/metrics", query=None))
        self._client = client
        self._on_drop = on_drop
        self._interval_s = interval_s
        self._clock = clock
        self._seen: dict[str, float] | None = None
        self._next = 0.0
        # Batches written at once call poll from their writer threads: one reads.
        self._reading = threading.Lock()

    def poll(self) -> dict[str, float]:
        """The counters that grew since the last read, if a read is due; else nothing."""
        if not self._reading.acquire(blocking=False):
            return {}  # another writer thread is reading them
        try:
            return self._poll()
        finally:
            self._reading.release()

    def _poll(self) -> dict[str, float]:
        now = self._clock()
        if now < self._next:
            return {}
        self._next = now + self._interval_s
        try:
            response = self._client.get(self._url)
            response.raise_for_status()
        except httpx.HTTPError:
            return {}  # the write path reports outages; this only watches for drops
        current = _parse(response.text)
        seen, self._seen = self._seen, current
        if seen is None:
            return {}  # the first read is the baseline: earlier drops are not ours to report
        grown = {k: v - seen.get(k, 0.0) for k, v in current.items() if v > seen.get(k, 0.0)}
        if grown:
            log.error(
                "VictoriaMetrics changed or left out data it had accepted: %s; its log says"
                " which series, and docs/validation.md which limits keep such data out",
                ", ".join(f"{k} +{v:g}" for k, v in sorted(grown.items())),
            )
            if self._on_drop is not None:
                for name, increase in grown.items():
                    self._on_drop(name, increase)
        return grown

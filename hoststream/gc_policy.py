"""How the components that move every sample set Python's cyclic garbage collector.

A sink or stream worker allocates several container objects per message
(the consumed message's record, its decoded values, a batch's lists), almost
none of which form reference cycles: reference counting frees them. With the
collector's default thresholds (a young collection every 700 container
allocations, a full one every hundred of those) it still walks them, and
every full collection walks again everything start-up created (modules,
schemas, clients), which lives until exit. In the VictoriaMetrics sink's
benchmark that cost about a sixth of the sink's CPU.

:func:`tune_for_throughput` moves what exists at start into the permanent
generation (``gc.freeze``: never scanned again) and collects the young
generation every 50,000 allocations. Cycles are still collected, only later;
memory held by cyclic garbage grows by at most that many objects.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["YOUNG_THRESHOLD", "tune_for_throughput", "tuned_for_throughput"]

#: Container allocations between two collections of the youngest generation.
YOUNG_THRESHOLD = 50_000
#: Young collections per collection of the middle generation, and those per full one.
_OLDER_THRESHOLDS = (20, 100)


def tune_for_throughput() -> bool:
    """Freeze what exists now and collect less often; returns whether it did.

    Only in a process's main thread: a component run in a test's thread
    leaves the test process' collector as it was.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *_OLDER_THRESHOLDS)
    return True


@contextmanager
def tuned_for_throughput() -> Iterator[bool]:
    """:func:`tune_for_throughput` for a block; after it the collector is as it was.

    For a process that runs a component among other work (a benchmark):
    what the block froze is scanned again, and the thresholds are restored.
    """
    thresholds = gc.get_threshold()
    tuned = tune_for_throughput()
    try:
        yield tuned
    finally:
        if tuned:
            gc.unfreeze()
            gc.set_threshold(*thresholds)

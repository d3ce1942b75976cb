"""Faust stream processors: windowed aggregates and alert events.

Where to start reading:

- :mod:`streams.aggregator`: the aggregation core, columns and NumPy, no Kafka.
- :mod:`streams.processor`: batches of Kafka messages to window states and closed windows.
- :mod:`streams.rules`: alert rules from YAML, evaluated on closed windows.
- :mod:`streams.app`: the Faust application; :func:`streams.app.run_worker` is what
  ``hoststream stream`` runs. It is not imported here, because importing Faust
  is slow and the core does not need it.


The names below are loaded when first used, not when the package is: the agent
parses ``HOSTSTREAM_STREAM_WINDOWS`` with :mod:`streams.windows` while loading
its settings and must not carry NumPy and the aggregator in memory for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hoststream.streams.aggregator import (
        DEFAULT_GRACE_MS,
        ClosedWindows,
        Outcome,
        WindowAggregator,
    )
    from hoststream.streams.cpu import CPU_BUSY_RATIO
    from hoststream.streams.metrics import StreamMetrics
    from hoststream.streams.sketch import DEFAULT_RELATIVE_ACCURACY, QuantileSketch
    from hoststream.streams.state import FamilyState
    from hoststream.streams.summary import Summary
    from hoststream.streams.windows import DEFAULT_WINDOWS, WindowSize, parse_windows

_MODULE_OF = {
    "CPU_BUSY_RATIO": "cpu",
    "DEFAULT_GRACE_MS": "aggregator",
    "DEFAULT_RELATIVE_ACCURACY": "sketch",
    "DEFAULT_WINDOWS": "windows",
    "ClosedWindows": "aggregator",
    "FamilyState": "state",
    "Outcome": "aggregator",
    "QuantileSketch": "sketch",
    "StreamMetrics": "metrics",
    "Summary": "summary",
    "WindowAggregator": "aggregator",
    "WindowSize": "windows",
    "parse_windows": "windows",
}

__all__ = [
    "CPU_BUSY_RATIO",
    "DEFAULT_GRACE_MS",
    "DEFAULT_RELATIVE_ACCURACY",
    "DEFAULT_WINDOWS",
    "ClosedWindows",
    "FamilyState",
    "Outcome",
    "QuantileSketch",
    "StreamMetrics",
    "Summary",
    "WindowAggregator",
    "WindowSize",
    "parse_windows",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)

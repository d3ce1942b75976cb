"""Faust stream processors: windowed aggregates and alert events.

Where to start reading:

- :mod:`streams.aggregator`: the aggregation core, columns and NumPy, no Kafka.
- :mod:`streams.processor`: batches of Kafka messages to window states and closed windows.
- :mod:`streams.rules`: alert rules from YAML, evaluated on closed windows.
- :mod:`streams.app`: the Faust application; :func:`streams.app.run_worker` is what
  ``hoststream stream`` runs. It is not imported here, because importing Faust
  is slow and the core does not need it.
"""

from hoststream.streams.aggregator import DEFAULT_GRACE_MS, ClosedWindows, Outcome, WindowAggregator
from hoststream.streams.cpu import CPU_BUSY_RATIO
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.sketch import DEFAULT_RELATIVE_ACCURACY, QuantileSketch
from hoststream.streams.state import FamilyState
from hoststream.streams.summary import Summary
from hoststream.streams.windows import DEFAULT_WINDOWS, WindowSize, parse_windows

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

"""Consumer groups that store samples, aggregates and alerts.

Start with :mod:`sinks.base` (the contract), then :mod:`sinks.consumer` (the
loop that batches, retries, dead-letters and commits), then one module per
destination: :mod:`sinks.victoriametrics`, :mod:`sinks.sql`.
:func:`run_sink` is what the command line calls. Their errors are in
:mod:`hoststream.errors`, dead-letter records in :mod:`hoststream.dead_letters`.
"""

from hoststream.sinks.app import SinkKind, build_sink, default_group, default_topics, run_sink
from hoststream.sinks.base import BatchingSink, SinkRecord
from hoststream.sinks.consumer import BatchPolicy, SinkConsumer
from hoststream.sinks.dlq import DeadLetterQueue
from hoststream.sinks.metrics import SinkMetrics
from hoststream.sinks.sql import SqlSink
from hoststream.sinks.victoriametrics import VictoriaMetricsSink

__all__ = [
    "BatchPolicy",
    "BatchingSink",
    "DeadLetterQueue",
    "SinkConsumer",
    "SinkKind",
    "SinkMetrics",
    "SinkRecord",
    "SqlSink",
    "VictoriaMetricsSink",
    "build_sink",
    "default_group",
    "default_topics",
    "run_sink",
]

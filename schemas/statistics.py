"""The statistics of a window aggregate, and their names wherever they appear.

The one list of them. A statistic's ``field`` is its name in
:class:`~hoststream.schemas.records.WindowAggregate`, the Avro schema
(``window_aggregate.avsc``), the SQL column and the API's JSON; ``series`` is
the statistic in its VictoriaMetrics series name ``<metric>:<series>_<window>``;
``name`` is what an alert rule calls it. Adding one means adding it here, to
the record and to the Avro schema (a test checks the three agree), and a SQL
migration that adds its column.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STATISTICS", "STATISTIC_FIELDS", "Statistic"]


@dataclass(frozen=True, slots=True)
class Statistic:
    """One statistic of a window.

    Args:
        field: the record attribute, Avro field, SQL column and API field.
        series: its part of the VictoriaMetrics series name.
        name: its name in alert rules.
        integer: a whole number (the sample count) rather than a float.
        optional: may be absent (``None``): the rate of a gauge.
    """

    field: str
    series: str
    name: str
    integer: bool = False
    optional: bool = False

    @property
    def python_type(self) -> type[int] | type[float]:
        """``int`` or ``float``; ``None`` is allowed too when :attr:`optional`."""
        return int if self.integer else float


def _same(field: str) -> Statistic:
    return Statistic(field, field, field)


STATISTICS: tuple[Statistic, ...] = (
    Statistic("count", "count", "count", integer=True),
    *map(_same, ("sum", "min", "max")),
    # ``avg`` is Prometheus' word for it (avg_over_time).
    Statistic("mean", "avg", "mean"),
    *map(_same, ("last", "p50", "p90", "p95", "p99")),
    # A counter's per-second increase over the window; None for gauges.
    Statistic("rate_per_second", "rate", "rate", optional=True),
)

STATISTIC_FIELDS: tuple[str, ...] = tuple(s.field for s in STATISTICS)

"""docs/observability.md's table of Prometheus metrics, read as data."""

from __future__ import annotations

from typing import NamedTuple

from tests.support.paths import REPO


class MetricRow(NamedTuple):
    """One row of the metrics table: the metric's type and label names."""

    type: str
    labels: tuple[str, ...]


def documented_metrics() -> dict[str, dict[str, MetricRow]]:
    """component -> metric name -> row, from docs/observability.md's "Prometheus metrics" table."""
    text = (REPO / "docs" / "observability.md").read_text()
    section = text.split("\n## Prometheus metrics\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, dict[str, MetricRow]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[1].startswith("`"):
            continue
        component, name, kind, labels, _meaning = cells
        table.setdefault(component, {})[name.strip("`")] = MetricRow(
            kind, tuple(label.strip(" `") for label in labels.split(",") if label.strip())
        )
    return table

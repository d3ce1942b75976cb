"""The VictoriaMetrics sink notices data the real VictoriaMetrics changes after accepting it."""

from __future__ import annotations

import time

from hoststream.config import Settings
from hoststream.schemas import MetricEvent, Sample
from hoststream.sinks.base import SinkRecord
from hoststream.sinks.victoriametrics import VictoriaMetricsSink


def test_labels_dropped_past_max_labels_per_timeseries_are_reported(
    services: Settings, unique: str
) -> None:
    drops: list[tuple[str, float]] = []
    sink = VictoriaMetricsSink(services.vm_url, on_drop=lambda *d: drops.append(d))
    now = [0.0]
    sink._drops._clock = lambda: now[0]  # read VictoriaMetrics' counters at every write
    # Past VictoriaMetrics' default of 30 labels: the validation contract refuses
    # it, so it is written here without it, as a sink behind lower limits would.
    wide = MetricEvent(
        f"{unique}-wide",
        "system",
        int(time.time() * 1000),
        # Names of this test's own: VictoriaMetrics counts drops when it first meets a series.
        (Sample("node_load1", 1.0, {f"{unique}_{i}": "x" for i in range(40)}),),
    )
    narrow = MetricEvent(
        f"{unique}-narrow", "system", int(time.time() * 1000), (Sample("node_load1", 1.0),)
    )
    try:
        assert sink.write([SinkRecord("t", 0, 0, None, None, narrow)]) == []  # the baseline
        now[0] += 60
        assert sink.write([SinkRecord("t", 0, 1, None, None, wide)]) == []  # a 204 all the same
        # VictoriaMetrics counts the drop once it has stored the row, a moment later;
        # the sink reads its counters after its next writes.
        deadline = time.monotonic() + 20
        while not drops and time.monotonic() < deadline:
            time.sleep(0.5)
            now[0] += 60
            sink.write([SinkRecord("t", 0, 2, None, None, narrow)])
    finally:
        sink.close()
    grown = dict(drops)
    # VictoriaMetrics 1.79 (Debian's) keeps the series and drops the labels past
    # the limit; newer releases (the one built from the module proxy) leave the
    # whole row out and count it as ignored. Either way the sink must report it.
    reported = grown.get("vm_metrics_with_dropped_labels_total", 0) + grown.get(
        'vm_rows_ignored_total{reason="too_many_labels"}', 0
    )
    assert reported >= 1, drops

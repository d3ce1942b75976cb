"""Series names, labels and validation for VictoriaMetrics."""

from __future__ import annotations

import math

import pytest

from hoststream.errors import InvalidRecordError
from hoststream.schemas import MetricEvent, MetricKind, Sample, WindowAggregate
from hoststream.schemas.validation import Validator
from hoststream.sinks.vm_series import (
    TimeBounds,
    aggregate_lines,
    aggregate_series_name,
    event_lines,
    validate,
    window_label,
)

NOW_MS = 1_800_000_000_000
BOUNDS = TimeBounds(NOW_MS, max_age_s=86_400, max_future_s=600)


def event(**overrides) -> MetricEvent:
    fields = {
        "host": "web-1",
        "family": "cpu",
        "timestamp_ms": NOW_MS - 10_000,
        "samples": (
            Sample(
                "node_cpu_seconds_total", 12.5, {"cpu": "0", "mode": "idle"}, MetricKind.COUNTER
            ),
            Sample("node_load1", 0.75),
        ),
        "host_labels": {"region": "eu", "instance": "spoofed"},
    }
    fields.update(overrides)
    return MetricEvent(**fields)


def aggregate(**overrides) -> WindowAggregate:
    fields = {
        "host": "web-1",
        "metric": "node_network_receive_bytes_total",
        "kind": MetricKind.COUNTER,
        "window_size_ms": 60_000,
        "window_start": NOW_MS - 120_000,
        "window_end": NOW_MS - 60_000,
        "count": 6,
        "sum": 60.0,
        "min": 5.0,
        "max": 15.0,
        "mean": 10.0,
        "last": 15.0,
        "p50": 10.0,
        "p90": 14.0,
        "p95": 14.5,
        "p99": 15.0,
        "quantile_relative_error": 0.01,
        "labels": {"device": "eth0"},
        "rate_per_second": 0.1666,
    }
    fields.update(overrides)
    return WindowAggregate(**fields)


def test_raw_samples_keep_node_exporter_names_with_instance_and_job() -> None:
    lines = event_lines(event())
    assert lines == [
        {
            "metric": {
                "__name__": "node_cpu_seconds_total",
                "region": "eu",
                "instance": "web-1",
                "job": "hoststream",
                "cpu": "0",
                "mode": "idle",
            },
            "values": [12.5],
            "timestamps": [NOW_MS - 10_000],
        },
        {
            "metric": {
                "__name__": "node_load1",
                "region": "eu",
                "instance": "web-1",
                "job": "hoststream",
            },
            "values": [0.75],
            "timestamps": [NOW_MS - 10_000],
        },
    ]


def test_sample_labels_win_over_host_labels_and_empty_values_are_dropped() -> None:
    e = event(
        samples=(Sample("node_load1", 1.0, {"region": "us", "role": ""}),),
        host_labels={"region": "eu", "role": "db"},
    )
    [line] = event_lines(e)
    assert line["metric"]["region"] == "us"
    assert "role" not in line["metric"]


@pytest.mark.parametrize(
    ("ms", "label"),
    [
        (60_000, "1m"),
        (300_000, "5m"),
        (3_600_000, "1h"),
        (86_400_000, "1d"),
        (10_000, "10s"),
        (90_000, "90s"),
        (1500, "1500ms"),
    ],
)
def test_window_labels(ms: int, label: str) -> None:
    assert window_label(ms) == label


def test_aggregates_use_recording_rule_names_stamped_at_window_end() -> None:
    lines = aggregate_lines(aggregate())
    names = [line["metric"]["__name__"] for line in lines]
    assert names == [
        f"node_network_receive_bytes_total:{stat}_1m"
        for stat in (
            "count",
            "sum",
            "min",
            "max",
            "avg",
            "last",
            "p50",
            "p90",
            "p95",
            "p99",
            "rate",
        )
    ]
    by_name = {line["metric"]["__name__"]: line for line in lines}
    avg = by_name["node_network_receive_bytes_total:avg_1m"]
    assert avg["values"] == [10.0]
    assert avg["timestamps"] == [NOW_MS - 60_000]
    assert avg["metric"] == {
        "__name__": "node_network_receive_bytes_total:avg_1m",
        "device": "eth0",
        "instance": "web-1",
        "job": "hoststream",
    }
    assert aggregate_series_name("node_load1", "p99", 300_000) == "node_load1:p99_5m"


def test_a_gauge_aggregate_has_no_rate_series() -> None:
    names = {
        line["metric"]["__name__"] for line in aggregate_lines(aggregate(rate_per_second=None))
    }
    assert "node_network_receive_bytes_total:rate_1m" not in names
    assert len(names) == 10


def test_valid_records_pass() -> None:
    validate(event(), BOUNDS)
    validate(aggregate(), BOUNDS)
    # As the validation contract says: nothing to store, nothing wrong (a host without disks).
    validate(event(samples=()), BOUNDS)


@pytest.mark.parametrize(
    "record",
    [
        event(timestamp_ms=0),
        event(timestamp_ms=NOW_MS + 3_600_000),
        event(timestamp_ms=NOW_MS - 2 * 86_400_000),
        aggregate(window_start=0, window_end=60_000),
    ],
)
def test_records_outside_vms_retention_are_invalid(record) -> None:
    with pytest.raises(InvalidRecordError, match="outside"):
        validate(record, BOUNDS)


def valid_labels(**overrides) -> MetricEvent:
    """An event whose host labels the contract accepts (no ``instance``) but for ``overrides``."""
    return event(**{"host_labels": {"region": "eu"}, **overrides})


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        (valid_labels(samples=(Sample("node_load1", math.nan),)), "NonFiniteValue"),
        (valid_labels(samples=(Sample("node_load1", math.inf),)), "NonFiniteValue"),
        (valid_labels(samples=(Sample("node load", 1.0),)), "InvalidMetricName"),
        (valid_labels(samples=(Sample("node_load1", 1.0, {"__name__": "x"}),)), "InvalidLabelName"),
        (valid_labels(host_labels={"bad-label": "x"}), "InvalidLabelName"),
        (valid_labels(host=""), "InvalidHostId"),
        (aggregate(p99=math.nan), "NonFiniteValue"),
        (aggregate(rate_per_second=-math.inf), "NonFiniteValue"),
        (aggregate(window_end=NOW_MS), "InvalidWindow"),
    ],
)
def test_what_vm_would_refuse_besides_is_the_validation_contracts(record, rule: str) -> None:
    # The sink's consumer applies the contract before the sink's retention check.
    found = Validator(clock_ms=lambda: NOW_MS).check(record)
    assert found is not None
    assert found.error == rule


def test_the_records_region_is_a_label_no_host_label_overrides() -> None:
    [line, _] = event_lines(event(region="region-a"))
    assert line["metric"]["region"] == "region-a"  # the host label said "eu"
    lines = aggregate_lines(aggregate(region="region-b"))
    assert {line["metric"]["region"] for line in lines} == {"region-b"}
    assert all("region" not in line["metric"] for line in aggregate_lines(aggregate()))

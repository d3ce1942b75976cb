"""The validation contract: each rule on its own, the limits as settings, real data passes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hoststream.config import Settings
from hoststream.producers.agent import HostEvents
from hoststream.producers.collectors import RecordedSource, default_collectors
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import FAMILIES, MetricEvent, MetricKind, Sample
from hoststream.schemas.validation import ValidationLimits, Validator, Violation
from tests.support.paths import DATA
from tests.support.records import T0, alert_event, metric_event, window_aggregate

SNAPSHOT = DATA / "debian12_vm_2cpu.json"


def validator(**limits: float) -> Validator:
    return Validator(ValidationLimits(**limits), clock_ms=lambda: T0)  # type: ignore[arg-type]


def error_of(record: object, topic: str | None = None, **limits: float) -> str | None:
    violation = validator(**limits).check(record, topic)
    return None if violation is None else violation.error


def event_with(*samples: Sample, **fields: object) -> MetricEvent:
    return replace(metric_event(), samples=samples or metric_event().samples, **fields)


def test_valid_records_pass_on_their_topics() -> None:
    v = validator()
    assert v.check(metric_event(), "metrics.cpu") is None
    assert v.check(window_aggregate(), "metrics.agg.1m") is None
    assert v.check(window_aggregate(counter=False), "metrics.agg.1m") is None
    assert v.check(alert_event(), "alerts") is None
    assert v.check(alert_event(resolved=True), "alerts") is None


@pytest.mark.parametrize(
    ("record", "topic"),
    [
        (replace(metric_event(), family="memory"), "metrics.cpu"),
        (metric_event(), "metrics.agg.1m"),
        (metric_event(), "alerts"),
        (window_aggregate(), "metrics.agg.5m"),
        (window_aggregate(), "metrics.cpu"),
        (alert_event(), "metrics.cpu"),
    ],
)
def test_a_record_on_another_kind_of_topic_is_wrong_topic(record: object, topic: str) -> None:
    assert error_of(record, topic) == "WrongTopic"


def test_the_topic_prefix_is_understood() -> None:
    v = Validator(topic_prefix="prod.", clock_ms=lambda: T0)
    assert v.check(metric_event(), "prod.metrics.cpu") is None
    assert v.check(window_aggregate(), "prod.metrics.agg.1m") is None
    assert v.check(alert_event(), "prod.alerts") is None
    assert v.check(metric_event(), "metrics.cpu") == Violation(
        "WrongTopic", "a 'cpu' event on topic 'metrics.cpu', which carries no events"
    )


def test_aggregates_and_alerts_mirrored_from_another_region_are_judged_by_their_own_topic() -> None:
    v = Validator(topic_prefix="prod.", clock_ms=lambda: T0)
    assert v.check(window_aggregate(), "region-a.prod.metrics.agg.1m") is None
    assert v.check(alert_event(), "region-a.prod.alerts") is None
    assert v.check(window_aggregate(), "region-a.prod.metrics.agg.5m").error == "WrongTopic"
    # Raw events are never mirrored: a copy of them is on no topic of theirs.
    assert v.check(metric_event(), "region-a.prod.metrics.cpu").error == "WrongTopic"


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("web-1", True),
        ("db-7.eu-west.example.com", True),
        ("10.0.0.1", True),
        ("fe80::1", True),
        ("h" * 253, True),
        ("h" * 254, False),
        ("", False),
        ("-leading-dash", False),
        ("has space", False),
        ("tab\there", False),
        ("nul\x00", False),
        ("é", False),
    ],
)
def test_host_ids(host: str, ok: bool) -> None:
    expected = None if ok else "InvalidHostId"
    assert error_of(replace(metric_event(), host=host)) == expected
    assert error_of(replace(window_aggregate(), host=host)) == expected
    assert error_of(replace(alert_event(), host=host)) == expected


def test_the_host_id_limit_is_a_setting() -> None:
    assert error_of(replace(metric_event(), host="h" * 20), max_host_id_length=10) == (
        "InvalidHostId"
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("node_load1", True),
        ("node_cpu:rate_1m", True),
        ("_private", True),
        ("1starts_with_digit", False),
        ("has-dash", False),
        ("", False),
        ("n" * 201, False),
    ],
)
def test_metric_names_follow_prometheus(name: str, ok: bool) -> None:
    assert error_of(event_with(Sample(name, 1.0))) == (None if ok else "InvalidMetricName")
    assert error_of(replace(window_aggregate(), metric=name)) == (
        None if ok else "InvalidMetricName"
    )


@pytest.mark.parametrize(
    ("labels", "error"),
    [
        ({"device": "sda", "mountpoint": "/var/lib/my data"}, None),
        ({"value": "ünïcødé ✓"}, None),
        ({"": "x"}, "InvalidLabelName"),
        ({"1a": "x"}, "InvalidLabelName"),
        ({"a-b": "x"}, "InvalidLabelName"),
        ({"__name__": "x"}, "InvalidLabelName"),
        ({"__meta": "x"}, "InvalidLabelName"),
        ({"instance": "other"}, "InvalidLabelName"),
        ({"job": "other"}, "InvalidLabelName"),
        ({"l" * 101: "x"}, "InvalidLabelName"),
        ({"a": "v" * 1025}, "InvalidLabelValue"),
        ({"a": "line\nbreak"}, "InvalidLabelValue"),
        ({"a": "nul\x00"}, "InvalidLabelValue"),
    ],
)
def test_label_names_and_values(labels: dict[str, str], error: str | None) -> None:
    assert error_of(event_with(Sample("node_load1", 1.0, labels))) == error
    assert error_of(replace(metric_event(), host_labels=labels)) == error
    assert error_of(replace(window_aggregate(), labels=labels)) == error
    assert error_of(replace(alert_event(), labels=labels)) == error


def test_labels_per_series_count_name_instance_job_and_host_labels() -> None:
    # 27 labels of its own + __name__, instance, job = 30: VictoriaMetrics' limit.
    labels = {f"l{n}": "x" for n in range(27)}
    assert error_of(replace(metric_event(), host_labels={}, samples=(Sample("m", 1, labels),))) is (
        None
    )
    many = replace(metric_event(), host_labels={}, samples=(Sample("m", 1, {**labels, "x": "1"}),))
    assert error_of(many) == "TooManyLabels"
    # A host label joins every series of the event.
    with_host = replace(
        metric_event(), host_labels={"role": "db"}, samples=(Sample("m", 1, labels),)
    )
    assert error_of(with_host) == "TooManyLabels"
    assert error_of(replace(window_aggregate(), labels={**labels, "x": "1"})) == "TooManyLabels"
    assert error_of(many, max_labels_per_series=40) is None
    huge = {f"l{n}": "x" for n in range(10_000)}
    assert error_of(event_with(Sample("m", 1, huge))) == "TooManyLabels"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_values_are_finite(value: float) -> None:
    assert error_of(event_with(Sample("node_load1", value))) == "NonFiniteValue"
    assert error_of(replace(window_aggregate(), p99=value)) == "NonFiniteValue"
    assert error_of(replace(window_aggregate(), rate_per_second=value)) == "NonFiniteValue"
    assert error_of(replace(alert_event(), value=value)) == "NonFiniteValue"


def test_counters_are_not_negative_but_gauges_may_be() -> None:
    counter = Sample("node_network_receive_bytes_total", -1.0, {"device": "e"}, MetricKind.COUNTER)
    assert error_of(event_with(counter)) == "NegativeCounter"
    assert error_of(event_with(Sample("node_hwmon_temp_celsius", -12.5))) is None
    assert error_of(replace(window_aggregate(), min=-1.0)) == "NegativeCounter"
    assert error_of(replace(window_aggregate(), rate_per_second=-0.5)) == "NegativeCounter"
    assert error_of(replace(window_aggregate(counter=False), min=-1.0, mean=0.0)) is None


@pytest.mark.parametrize(
    ("offset_ms", "error"),
    [
        (0, None),
        (-7 * 86_400_000, None),
        (-7 * 86_400_000 - 1, "StaleTimestamp"),
        (600_000, None),
        (600_001, "FutureTimestamp"),
        (-T0, "StaleTimestamp"),  # 1970
        (10 * 365 * 86_400_000, "FutureTimestamp"),
    ],
)
def test_timestamps_lie_in_a_window_around_the_consumers_clock(
    offset_ms: int, error: str | None
) -> None:
    assert error_of(replace(metric_event(), timestamp_ms=T0 + offset_ms)) == error
    end = (T0 + offset_ms) // 60_000 * 60_000
    aggregate = replace(window_aggregate(), window_start=end - 60_000, window_end=end)
    # Aligning may move the end by under a minute: compare with the aligned offset.
    expected = error_of(replace(metric_event(), timestamp_ms=end))
    assert error_of(aggregate) == expected
    assert error_of(replace(alert_event(), event_time=T0 + offset_ms)) == error


def test_the_time_window_is_a_setting() -> None:
    event = replace(metric_event(), timestamp_ms=T0 - 120_000)
    assert error_of(event, max_age_s=60) == "StaleTimestamp"
    assert error_of(replace(event, timestamp_ms=T0 + 120_000), max_future_s=60) == (
        "FutureTimestamp"
    )


def test_a_series_twice_in_one_event_is_refused() -> None:
    twice = event_with(Sample("node_load1", 1.0), Sample("node_load1", 2.0))
    assert error_of(twice) == "DuplicateSeries"
    distinct = event_with(Sample("m", 1.0, {"cpu": "0"}), Sample("m", 2.0, {"cpu": "1"}))
    assert error_of(distinct) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"window_end": T0 + 59_000},
        {"window_size_ms": 0},
        {"window_start": T0 + 1, "window_end": T0 + 60_001},
        {"count": 0},
    ],
)
def test_aggregate_windows_are_aligned_and_not_empty(fields: dict[str, int]) -> None:
    assert error_of(replace(window_aggregate(), **fields)) == "InvalidWindow"


def test_alert_fields() -> None:
    assert error_of(replace(alert_event(), dedup_key="")) == "InvalidAlert"
    assert error_of(replace(alert_event(), rule="")) == "InvalidAlert"
    assert error_of(replace(alert_event(), annotations={"summary": "x\x00"})) == (
        "InvalidLabelValue"
    )
    assert error_of(replace(alert_event(), annotations={"summary": "two\nlines"})) is None


def test_an_alerts_instance_label_naming_its_host_is_its_alertmanager_label() -> None:
    alert = alert_event()
    assert error_of(replace(alert, labels={**alert.labels, "instance": alert.host})) is None
    other = replace(alert, labels={**alert.labels, "instance": f"not-{alert.host}"})
    assert error_of(other) == "InvalidLabelName"


def test_anything_else_is_an_unknown_record() -> None:
    assert error_of(b"bytes") == "UnknownRecord"
    assert error_of(None) == "UnknownRecord"


def test_reasons_never_carry_a_whole_huge_value() -> None:
    violation = validator().check(replace(metric_event(), host="h" * 10_000))
    assert violation is not None
    assert len(violation.reason) < 300
    assert "10000 characters" in violation.reason


def test_check_batch_reads_the_clock_once() -> None:
    reads = []

    def clock() -> int:
        reads.append(1)
        return T0

    v = Validator(clock_ms=clock)
    records = [metric_event(), replace(metric_event(), host=""), window_aggregate()]
    results = v.check_batch(records, ["metrics.cpu", "metrics.cpu", "metrics.agg.1m"])
    assert [r if r is None else r.error for r in results] == [None, "InvalidHostId", None]
    assert len(reads) == 1
    with pytest.raises(ValueError, match="topics"):
        v.check_batch(records, ["metrics.cpu"])


def test_valid_samples_keeps_the_good_ones() -> None:
    event = event_with(
        Sample("node_load1", 1.0),
        Sample("node_load5", float("nan")),
        Sample("bad-name", 1.0),
        Sample("node_load15", 2.0),
    )
    kept, dropped = validator().valid_samples(event)
    assert [s.name for s in kept.samples] == ["node_load1", "node_load15"]
    assert [v.error for v in dropped] == ["NonFiniteValue", "InvalidMetricName"]
    same, none = validator().valid_samples(metric_event())
    assert same is metric_event() or same == metric_event()
    assert none == []


def test_limits_come_from_the_settings() -> None:
    settings = Settings(
        validation_max_labels_per_series=12,
        validation_max_age_s=60,
        validation_max_future_s=5,
        topic_prefix="p.",
    )
    v = Validator.from_settings(settings)
    assert v.limits.max_labels_per_series == 12
    assert v.limits.max_age_s == 60
    assert v.limits.max_future_s == 5
    assert ValidationLimits.from_settings(Settings()) == ValidationLimits()


def test_what_the_producer_collects_is_valid() -> None:
    collectors = default_collectors(RecordedSource.from_file(SNAPSHOT))
    events = list(HostEvents(collectors, "db-1.example", {"role": "db"}).events(T0, 10_000))
    assert {e.family for e in events} == set(FAMILIES)
    # Each event is stamped when its family was read: the wall clock.
    v = Validator()
    assert [v.check(e, f"metrics.{e.family}") for e in events] == [None] * len(events)


def test_what_the_simulated_fleet_sends_is_valid() -> None:
    fleet = SimulatedFleet(20, seed=3)
    v = validator()
    for tick in range(3):
        for event in fleet.events(T0 + tick * 10_000):
            assert v.check(event, f"metrics.{event.family}") is None, event.host


def columns_of(event: MetricEvent) -> dict[str, object]:
    return {
        "host": event.host,
        "family": event.family,
        "timestamp_ms": event.timestamp_ms,
        "series": tuple(((s.name, tuple(sorted(s.labels.items()))), s.kind) for s in event.samples),
        "values": np.array([s.value for s in event.samples], dtype=np.float64),
        "host_labels": event.host_labels,
    }


@pytest.mark.parametrize(
    "event",
    [
        metric_event(),
        event_with(Sample("node_load1", float("nan"))),
        event_with(Sample("node_intr_total", -2.0, {}, MetricKind.COUNTER)),
        event_with(Sample("node_load1", 1.0), Sample("node_load1", 2.0)),
        event_with(Sample("bad-name", 1.0)),
        event_with(Sample("m", 1.0, {f"l{i}": "x" for i in range(40)})),
        replace(metric_event(), host="h" * 300),
        replace(metric_event(), timestamp_ms=0),
        replace(metric_event(), host_labels={"job": "x"}),
    ],
)
def test_the_columnar_form_judges_as_the_record_form(event: MetricEvent) -> None:
    v = validator()
    expected = v.check(event, "metrics.cpu")
    for layout in (None, "template-1", "template-1"):  # the second time from the cache
        got = Validator(clock_ms=lambda: T0).check_columns(
            **columns_of(event), layout=layout, topic="metrics.cpu"
        )
        assert (got and got.error) == (expected and expected.error)


def test_the_layouts_of_a_fleet_of_2000_hosts_are_each_judged_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v = validator()
    judged: list[object] = []
    judge = v._judge_layout
    monkeypatch.setattr(v, "_judge_layout", lambda *a: judged.append(a) or judge(*a))
    good = columns_of(metric_event())
    layouts = [(host, family) for host in range(2000) for family in range(5)]
    for _ in range(2):
        for layout in layouts:
            assert v.check_columns(**good, layout=layout) is None
    assert len(judged) == len(layouts)


def test_a_known_layout_judges_only_the_values() -> None:
    v = validator()
    good = columns_of(metric_event())
    assert v.check_columns(**good, layout=7) is None
    # Same layout id, new values: only the values are looked at again.
    nan = {**good, "values": np.array([1.0, float("nan"), 0.5])}
    assert v.check_columns(**nan, layout=7) == Violation(
        "NonFiniteValue", "the value of 'node_cpu_seconds_total' is nan"
    )
    negative = {**good, "values": np.array([1.0, -3.0, 0.5])}
    violation = v.check_columns(**negative, layout=7)
    assert violation is not None
    assert violation.error == "NegativeCounter"


@settings(max_examples=300, deadline=None)
@given(
    host=st.sampled_from(["web-1", "web-2", "bad host", "h" * 300]),
    offset_s=st.sampled_from([0, -10, -(10**6), 10**6]),
    values=st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=64)
        | st.sampled_from([1e308, -1e308, -0.0, -1.0]),
        min_size=3,
        max_size=3,
    ),
)
@example(host="web-1", offset_s=0, values=[1.0, float("inf"), 0.5])
@example(host="web-1", offset_s=0, values=[1.0, 2.0, float("-inf")])
@example(host="web-1", offset_s=0, values=[1e308, 1e308, 1e308])
def test_a_known_layout_is_judged_as_a_new_one(
    host: str, offset_s: int, values: list[float]
) -> None:
    """The short path for a layout judged before gives the very verdict of the whole
    columnar check, and refuses what the record form refuses."""
    record = replace(
        metric_event(),
        host=host,
        timestamp_ms=T0 + offset_s * 1000,
        samples=tuple(
            replace(sample, value=value)
            for sample, value in zip(metric_event().samples, values, strict=True)
        ),
    )
    warm = validator()
    assert warm.check_columns(**columns_of(metric_event()), layout=7) is None  # 7 is now known
    got = warm.check_columns(**columns_of(record), layout=7)
    assert got == validator().check_columns(**columns_of(record))
    # Both forms refuse the same records (naming the first bad value each in its own order).
    assert (got is None) == (validator().check(record) is None)

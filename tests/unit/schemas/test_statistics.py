"""The one list of aggregate statistics agrees with every place that names them."""

from __future__ import annotations

import dataclasses
import json

from hoststream.api.models import AggregateOut
from hoststream.schemas import MetricKind, WindowAggregate, schema_for
from hoststream.schemas.statistics import STATISTIC_FIELDS, STATISTICS
from hoststream.sinks.sql_schema import WINDOW_AGGREGATES
from hoststream.sinks.vm_series import AGGREGATE_STATS
from hoststream.streams.rules.model import AGGREGATES


def test_every_statistic_is_a_field_of_the_record_and_of_its_avro_schema() -> None:
    record_fields = [f.name for f in dataclasses.fields(WindowAggregate)]
    avro_fields = [f["name"] for f in json.loads(schema_for(WindowAggregate).text)["fields"]]
    assert set(STATISTIC_FIELDS) <= set(record_fields)
    assert set(STATISTIC_FIELDS) <= set(avro_fields)


def test_only_the_rate_may_be_absent() -> None:
    assert [s.field for s in STATISTICS if s.optional] == ["rate_per_second"]
    defaults = {f.name: f.default for f in dataclasses.fields(WindowAggregate)}
    assert defaults["rate_per_second"] is None


def test_sql_columns_api_fields_vm_series_and_rule_names_derive_from_the_one_list() -> None:
    assert [c for c in WINDOW_AGGREGATES.written if c in STATISTIC_FIELDS] == list(STATISTIC_FIELDS)
    assert [f for f in AggregateOut.model_fields if f in STATISTIC_FIELDS] == list(STATISTIC_FIELDS)
    assert AGGREGATE_STATS["avg"] == "mean"
    assert AGGREGATE_STATS["rate"] == "rate_per_second"
    assert set(AGGREGATE_STATS.values()) == set(STATISTIC_FIELDS)
    assert tuple(s.name for s in STATISTICS) == AGGREGATES


def test_avro_round_trip_keeps_every_statistic() -> None:
    aggregate = WindowAggregate(
        host="h",
        metric="node_load1",
        kind=MetricKind.COUNTER,
        window_size_ms=60_000,
        window_start=0,
        window_end=60_000,
        quantile_relative_error=0.01,
        **{s.field: (7 if s.integer else 0.5 + i) for i, s in enumerate(STATISTICS)},
    )
    record = aggregate.to_avro()
    assert isinstance(record["count"], int)
    assert WindowAggregate.from_avro(record) == aggregate

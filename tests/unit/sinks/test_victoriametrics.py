"""The VictoriaMetrics sink against an in-memory HTTP double (httpx.MockTransport)."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace

import cramjam
import httpx
import pytest

from hoststream.errors import SinkBackpressureError, SinkFatalError, SinkUnavailableError
from hoststream.producers.simulation import SimulatedFleet
from hoststream.schemas import MetricEvent, Sample, SingleObjectAvroSerializer
from hoststream.sinks.base import SinkRecord
from hoststream.sinks.victoriametrics import (
    REMOTE_WRITE_REQUEST_SERIES,
    VictoriaMetricsSink,
    series_parts,
)
from hoststream.sinks.vm_import import MetricEventReader
from hoststream.sinks.vm_remote_write import event_template
from tests.support.remote_write import decoded
from tests.support.shaped_reading import CountingDeserializer

NOW_S = 1_800_000_000.0


def record(offset: int, host: str = "h1") -> SinkRecord:
    e = MetricEvent(
        host, "system", int(NOW_S * 1000) - offset, (Sample("node_load1", float(offset)),)
    )
    return SinkRecord("metrics.system", 0, offset, host.encode(), b"raw", e)


class FakeVm:
    """Answers imports like VictoriaMetrics; refuses any body that mentions ``poison``."""

    def __init__(self, status: int = 204, headers: dict | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []
        self.lines: list[dict] = []
        self.metrics_reads = 0
        self.exposition = "vm_metrics_with_dropped_labels_total 0\n"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            self.metrics_reads += 1
            return httpx.Response(200, text=self.exposition)
        self.requests.append(request)
        body = request.content
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if request.headers.get("Content-Encoding") == "snappy":
            body = bytes(cramjam.snappy.decompress_raw(body))
        if b"poison" in body:
            return httpx.Response(400, text="cannot parse")
        if self.status != 204:
            return httpx.Response(self.status, headers=self.headers, text="nope")
        if request.url.path.endswith("/api/v1/write"):
            self.lines += decoded(body)
        else:
            self.lines += [json.loads(line) for line in body.decode().splitlines()]
        return httpx.Response(204)


def sink_for(vm: FakeVm, **options) -> VictoriaMetricsSink:
    client = httpx.Client(transport=httpx.MockTransport(vm))
    return VictoriaMetricsSink("http://vm:8428/", client=client, clock=lambda: NOW_S, **options)


def test_a_batch_is_one_remote_write_request_by_default() -> None:
    vm = FakeVm()
    sink = sink_for(vm)
    assert sink.write([record(1), record(2), record(3)]) == []
    [request] = vm.requests
    assert request.url == "http://vm:8428/api/v1/write"
    assert request.headers["Content-Encoding"] == "snappy"
    assert request.headers["Content-Type"] == "application/x-protobuf"
    assert [line["values"] for line in vm.lines] == [[1.0], [2.0], [3.0]]
    assert vm.lines[0]["metric"] == {
        "__name__": "node_load1",
        "instance": "h1",
        "job": "hoststream",
    }


def wide_record(offset: int, samples: int) -> SinkRecord:
    values = tuple(Sample(f"node_x{i}", float(offset)) for i in range(samples))
    e = MetricEvent("h1", "system", int(NOW_S * 1000) - offset, values)
    return SinkRecord("metrics.system", 0, offset, b"h1", b"raw", e)


def test_a_remote_write_batch_goes_out_in_requests_of_bounded_series() -> None:
    vm = FakeVm()
    sink = sink_for(vm, wire_format="remote_write")
    # 40 series a record: 250 records make a request's worth.
    batch = [wide_record(i, 40) for i in range(1, 2 * REMOTE_WRITE_REQUEST_SERIES // 40 + 2)]
    assert sink.write(batch) == []
    assert len(vm.requests) == 3
    stored = sorted({line["values"][0] for line in vm.lines})
    assert stored == [float(r.offset) for r in batch]
    assert len(vm.lines) == 40 * len(batch)


def test_a_shapes_events_go_together_whatever_their_order_in_the_batch() -> None:
    fleet = SimulatedFleet(2, seed=3)
    start_ms = int(NOW_S * 1000) - 40_000
    events = [e for tick in range(4) for e in fleet.events(start_ms + tick * 10_000)]
    reader = MetricEventReader(CountingDeserializer(MetricEvent), derive=event_template)
    encode = SingleObjectAvroSerializer(MetricEvent)
    # Interleaved as the partitions deliver them: host after host, tick after tick.
    batch = [
        SinkRecord("metrics.x", 0, i, b"k", b"raw", reader(encode(e))) for i, e in enumerate(events)
    ]
    parts = series_parts(batch, 10**6)
    [part] = parts
    shapes = [id(r.decoded.shape) for r in part]
    # Each shape's four events one after another, in their order.
    assert len(set(shapes)) == len(events) // 4
    for n in range(0, len(shapes), 4):
        assert len(set(shapes[n : n + 4])) == 1
        offsets = [r.offset for r in part[n : n + 4]]
        assert offsets == sorted(offsets)


def test_requests_are_cut_by_series_whole_records_in_order() -> None:
    batch = [wide_record(i, n) for i, n in enumerate([6, 3, 1, 5, 5, 2], start=1)]
    # Objects decoded in full have no shape: they keep their order.
    parts = series_parts(batch, 8)
    assert [[r.offset for r in part] for part in parts] == [[1, 2], [3, 4, 5], [6]]


def test_an_unknown_wire_format_is_refused() -> None:
    with pytest.raises(ValueError, match="remote_write or import"):
        sink_for(FakeVm(), wire_format="json")


@pytest.mark.parametrize("compress_level", [0, 1])
def test_a_batch_is_one_import_of_json_lines_when_asked_gzipped_at_a_level(
    compress_level: int,
) -> None:
    vm = FakeVm()
    sink = sink_for(vm, wire_format="import", compress_level=compress_level)
    assert sink.write([record(1), record(2), record(3)]) == []
    [request] = vm.requests
    assert request.url == "http://vm:8428/api/v1/import"
    assert request.headers.get("Content-Encoding") == ("gzip" if compress_level else None)
    assert [line["values"] for line in vm.lines] == [[1.0], [2.0], [3.0]]
    assert vm.lines[0]["metric"] == {
        "__name__": "node_load1",
        "instance": "h1",
        "job": "hoststream",
    }


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_a_refused_record_is_found_by_bisection_and_only_it_is_rejected(in_flight: int) -> None:
    vm = FakeVm()
    batch = [record(i) for i in range(1, 8)]
    batch[4] = record(5, host="poison")
    rejected = sink_for(vm, in_flight=in_flight).write(batch)
    assert [r.record.offset for r in rejected] == [5]
    assert "HTTP 400" in rejected[0].reason
    assert sorted(line["values"][0] for line in vm.lines) == [1, 2, 3, 4, 6, 7]


@pytest.mark.parametrize("wire_format", ["import", "remote_write"])
def test_a_batch_split_over_several_requests_fails_whole_if_one_part_fails(
    wire_format: str,
) -> None:
    calls = []

    def second_fails(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503 if len(calls) == 2 else 204)

    client = httpx.Client(transport=httpx.MockTransport(second_fails))
    sink = VictoriaMetricsSink(
        "http://vm", client=client, clock=lambda: NOW_S, in_flight=2, wire_format=wire_format
    )
    # Two requests' worth in either format: two halves of the lines, or
    # twice a remote-write request's series.
    batch = [wide_record(i, 40) for i in range(1, 2 * REMOTE_WRITE_REQUEST_SERIES // 40 + 1)]
    with pytest.raises(SinkBackpressureError):
        sink.write(batch)
    assert len(calls) == 2


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_ask_for_a_retry(status: int) -> None:
    with pytest.raises(SinkUnavailableError):
        sink_for(FakeVm(status)).write([record(1)])


def test_too_many_requests_is_backpressure_with_retry_after() -> None:
    with pytest.raises(SinkBackpressureError) as info:
        sink_for(FakeVm(429, {"Retry-After": "7"})).write([record(1)])
    assert info.value.retry_after == 7.0


def test_a_refused_login_is_fatal_not_a_dead_letter() -> None:
    with pytest.raises(SinkFatalError, match="HOSTSTREAM_VM_URL"):
        sink_for(FakeVm(401)).write([record(1)])


def test_a_connection_failure_asks_for_a_retry() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sink = VictoriaMetricsSink(
        "http://vm:8428", client=httpx.Client(transport=httpx.MockTransport(refuse))
    )
    with pytest.raises(SinkUnavailableError, match="did not answer"):
        sink.write([record(1)])


def test_labels_victoriametrics_drops_after_accepting_are_reported_not_silent(caplog) -> None:
    vm = FakeVm()
    now = [0.0]
    drops: list[tuple[str, float]] = []
    client = httpx.Client(transport=httpx.MockTransport(vm))
    sink = VictoriaMetricsSink(
        "http://vm:8428/", client=client, clock=lambda: NOW_S, on_drop=lambda *d: drops.append(d)
    )
    sink._drops._clock = lambda: now[0]  # a fake monotonic clock for the 10 s between reads
    sink.write([record(1)])  # the first read is the baseline
    vm.exposition = (
        "vm_metrics_with_dropped_labels_total 1\n"
        'vm_rows_ignored_total{reason="big_timestamp"} 3\n'
        "vm_rows_inserted_total 99\n"
    )
    sink.write([record(2)])
    assert drops == []  # not read again within 10 s
    now[0] = 11.0
    with caplog.at_level("ERROR"):
        sink.write([record(3)])
    assert sorted(drops) == [
        ("vm_metrics_with_dropped_labels_total", 1.0),
        ('vm_rows_ignored_total{reason="big_timestamp"}', 3.0),
    ]
    assert "changed or left out data it had accepted" in caplog.text
    assert vm.metrics_reads == 2


def test_an_event_without_samples_is_accepted_and_sends_nothing() -> None:
    vm = FakeVm()
    empty = replace(record(1), decoded=replace(record(1).decoded, samples=()))
    assert sink_for(vm).write([empty]) == []
    assert vm.requests == []

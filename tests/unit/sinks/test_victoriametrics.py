"""The VictoriaMetrics sink against an in-memory HTTP double (httpx.MockTransport)."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from hoststream.errors import SinkBackpressureError, SinkFatalError, SinkUnavailableError
from hoststream.schemas import MetricEvent, Sample
from hoststream.sinks.base import SinkRecord
from hoststream.sinks.victoriametrics import VictoriaMetricsSink

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

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = gzip.decompress(request.content).decode()
        if "poison" in body:
            return httpx.Response(400, text="cannot parse")
        if self.status != 204:
            return httpx.Response(self.status, headers=self.headers, text="nope")
        self.lines += [json.loads(line) for line in body.splitlines()]
        return httpx.Response(204)


def sink_for(vm: FakeVm) -> VictoriaMetricsSink:
    client = httpx.Client(transport=httpx.MockTransport(vm))
    return VictoriaMetricsSink("http://vm:8428/", client=client, clock=lambda: NOW_S)


def test_a_batch_is_one_gzip_import_of_json_lines() -> None:
    vm = FakeVm()
    assert sink_for(vm).write([record(1), record(2), record(3)]) == []
    [request] = vm.requests
    assert request.url == "http://vm:8428/api/v1/import"
    assert request.headers["Content-Encoding"] == "gzip"
    assert [line["values"] for line in vm.lines] == [[1.0], [2.0], [3.0]]
    assert vm.lines[0]["metric"] == {
        "__name__": "node_load1",
        "instance": "h1",
        "job": "hoststream",
    }


def test_a_refused_record_is_found_by_bisection_and_only_it_is_rejected() -> None:
    vm = FakeVm()
    batch = [record(i) for i in range(1, 8)]
    batch[4] = record(5, host="poison")
    rejected = sink_for(vm).write(batch)
    assert [r.record.offset for r in rejected] == [5]
    assert "HTTP 400" in rejected[0].reason
    assert sorted(line["values"][0] for line in vm.lines) == [1, 2, 3, 4, 6, 7]


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

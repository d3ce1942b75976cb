"""VictoriaMetrics: raw samples and window aggregates, by JSON import or remote write.

A batch is sent as JSON lines, one per series (``POST /api/v1/import``;
:mod:`sinks.vm_import`), or with ``wire_format="remote_write"`` as one
Prometheus remote-write request (``POST /api/v1/write``, protobuf and snappy;
:mod:`sinks.vm_remote_write`), which any remote-write receiver takes;
:mod:`sinks.vm_series` names and labels the series alike in both.
VictoriaMetrics answers 204 even when it skips a malformed line or a sample
outside its retention, so records are judged before they are sent, by the
validation contract (the consumer's validator) and for the retention by
:meth:`VictoriaMetricsSink.check`, and such records are dead-lettered
instead of silently lost.

Writing a batch again after a crash stores its samples again: without
``-dedup.minScrapeInterval`` VictoriaMetrics keeps samples with equal
timestamps as duplicates (docs/sinks.md).
"""

from __future__ import annotations

import gzip
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Literal

import cramjam
import httpx

from hoststream.dead_letters import Rejection
from hoststream.errors import SinkBackpressureError, SinkFatalError, SinkUnavailableError
from hoststream.schemas import MetricEvent, WindowAggregate
from hoststream.sinks.aggregate_reader import AggregateValues
from hoststream.sinks.base import BatchingSink, SinkRecord
from hoststream.sinks.vm_drops import DroppedDataWatch
from hoststream.sinks.vm_import import EventValues, check_values, import_body
from hoststream.sinks.vm_remote_write import write_request
from hoststream.sinks.vm_series import TimeBounds, validate

__all__ = ["VictoriaMetricsSink", "VmRecord", "WireFormat"]

log = logging.getLogger(__name__)

#: Metric events arrive as :class:`EventValues` once their shape is known,
#: window aggregates as :class:`AggregateValues` once their series is.
VmRecord = EventValues | AggregateValues | MetricEvent | WindowAggregate

#: Series in one remote-write request, about: VictoriaMetrics spent less CPU
#: per value on requests of about 10,000 series than on ten times larger ones
#: (it reads a request whole; it streams JSON lines). A record is never split.
REMOTE_WRITE_REQUEST_SERIES = 10_000
#: An aggregate's series: count, sum, min, max, avg, last, four quantiles (and a rate).
_AGGREGATE_SERIES = 11


def _series_of(record: VmRecord) -> int:
    """How many series ``record`` writes, about (an aggregate's rate counted always)."""
    if isinstance(record, EventValues):
        return len(record.shape.counters)
    if isinstance(record, MetricEvent):
        return len(record.samples)
    return _AGGREGATE_SERIES


def _shape_id(record: SinkRecord[VmRecord]) -> int:
    return id(getattr(record.decoded, "shape", None))


def series_parts(
    records: Sequence[SinkRecord[VmRecord]], series: int
) -> list[list[SinkRecord[VmRecord]]]:
    """``records`` cut into parts of about ``series`` series each, the records of a
    shape (a host's family, an aggregate's series) together and in their order.

    A backlog's batch holds several events of each shape: in one request they
    become one ``TimeSeries`` per series with all its samples, which
    VictoriaMetrics reads for less CPU per value than as many one-sample series.
    """
    parts: list[list[SinkRecord[VmRecord]]] = []
    part: list[SinkRecord[VmRecord]] = []
    size = 0
    for record in sorted(records, key=_shape_id):
        part.append(record)
        size += _series_of(record.decoded)
        if size >= series:
            parts.append(part)
            part, size = [], 0
    if part:
        parts.append(part)
    return parts


#: ``remote_write``: Prometheus remote write; ``import``: JSON lines.
WireFormat = Literal["remote_write", "import"]

# Answers that blame the request's content: find the record and dead-letter it.
_RECORD_LEVEL = frozenset({400, 413, 422})
# Answers that pass with time.
_TRANSIENT_4XX = frozenset({408, 425, 429})


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return float(response.headers.get("Retry-After", default))
    except ValueError:  # an HTTP date: rare enough to not parse
        return default


class VictoriaMetricsSink(BatchingSink[VmRecord]):
    """Stores metric events and window aggregates in VictoriaMetrics.

    Args:
        url: VictoriaMetrics' base URL (``HOSTSTREAM_VM_URL``), e.g.
            ``http://127.0.0.1:8428``; for a cluster, the vminsert URL up to
            and including ``/insert/<tenant>/prometheus``.
        client: an HTTP client to use (default: a new one, closed by :meth:`close`).
        timeout_s: per-request timeout.
        max_age_s: samples older than this are dead-lettered; keep it within
            VictoriaMetrics' ``-retentionPeriod`` (it drops older samples silently).
        max_future_s: samples further ahead of this process' clock are dead-lettered.
        wire_format: ``import`` (``/api/v1/import`` JSON lines; shapes carry
            import-line prefixes) or ``remote_write`` (``/api/v1/write``,
            snappy; events and aggregates read by shape must carry
            remote-write templates, see :mod:`sinks.vm_remote_write`).
        compress_level: for ``import``, the gzip level, 0 for none; 1
            compresses the import lines about 5x at 0.3 µs a sample.
            Remote write is always snappy-compressed, as the protocol requires.
        in_flight: requests of a batch sent at once (JSON lines: the batch is
            split in as many parts; remote write: requests of about 10,000
            series each). Four let VictoriaMetrics parse a burst of window
            aggregates on every core; with two it drained the bursts of 1,500
            simulated hosts too slowly in the pipeline benchmark.
        clock: seconds since the epoch; tests pass a fixed one.
        on_drop: called with each of VictoriaMetrics' own counters of data it
            changed after accepting it (:mod:`sinks.vm_drops`) that grew, and
            by how much; they are read at most every 10 s, after a write.
        auth: basic-auth user and password, when VictoriaMetrics asks for them.
        verify: what the HTTPS certificate is verified with (a context holding the CA).
    """

    name = "victoriametrics"
    # A write mostly waits for VictoriaMetrics to parse the body: the loop
    # reads and decodes the next batch meanwhile. With one batch in flight
    # VictoriaMetrics sat idle while the loop decoded and committed (about
    # half of a backlog's reading); with two it parses one batch's requests
    # while the next one's are encoded.
    write_ahead = True
    batches_in_flight = 2

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client | None = None,
        timeout_s: float = 10.0,
        max_age_s: float = 29 * 86_400.0,
        max_future_s: float = 600.0,
        wire_format: WireFormat = "remote_write",
        compress_level: int = 0,
        in_flight: int = 4,
        clock: Callable[[], float] = time.time,
        on_drop: Callable[[str, float], None] | None = None,
        auth: tuple[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        if wire_format not in ("remote_write", "import"):
            raise ValueError(f"unknown wire format {wire_format!r}: remote_write or import")
        self.wire_format: WireFormat = wire_format
        path = "/api/v1/write" if wire_format == "remote_write" else "/api/v1/import"
        self._write_url = url.rstrip("/") + path
        self._own_client = client is None
        self._client = (
            client
            if client is not None
            else httpx.Client(timeout=timeout_s, auth=auth, verify=verify)
        )
        self._drops = DroppedDataWatch(url, self._client, on_drop=on_drop)
        self._max_age_s = max_age_s
        self._max_future_s = max_future_s
        self._compress_level = compress_level
        self._in_flight = in_flight
        self._pool = ThreadPoolExecutor(max(1, in_flight), thread_name_prefix="vm-write")
        self._body: Callable[[Iterable[VmRecord]], bytes]
        self._request_series = REMOTE_WRITE_REQUEST_SERIES if wire_format == "remote_write" else 0
        if wire_format == "remote_write":
            self._body = write_request
            # What Prometheus sends with a remote write.
            self._headers = {
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            }
        else:
            self._body = import_body
            self._headers = {"Content-Type": "application/x-ndjson"}
            if compress_level > 0:
                self._headers["Content-Encoding"] = "gzip"
        self._clock = clock
        # The retention window of the current second: one per second, not per record.
        self._bounds_second = -1
        self._bounds = TimeBounds(0, max_age_s, max_future_s)

    def check(self, value: VmRecord) -> None:
        """Refuse a record whose samples VictoriaMetrics would drop: outside its retention.

        What else it refuses is the validation contract's, which the consumer
        applies first (:mod:`hoststream.schemas.validation`).
        """
        second = int(self._clock())
        if second != self._bounds_second:
            self._bounds = TimeBounds(second * 1000, self._max_age_s, self._max_future_s)
            self._bounds_second = second
        if isinstance(value, EventValues):
            check_values(value, self._bounds)
        elif isinstance(value, AggregateValues):
            self._bounds.check(value.window_end, "window_end")
        else:
            validate(value, self._bounds)

    def write(self, batch: Sequence[SinkRecord[VmRecord]]) -> Sequence[Rejection[SinkRecord[Any]]]:
        records = list(batch)
        if self._request_series:
            parts = series_parts(records, self._request_series)
        elif self._in_flight < 2 or len(records) < 2 * self._in_flight:
            parts = [records]
        else:
            step = -(-len(records) // self._in_flight)
            parts = [records[i : i + step] for i in range(0, len(records), step)]
        if len(parts) == 1:
            rejections = self._write(parts[0])
        else:
            # Parts of the batch go out as separate requests: each part is encoded
            # while the previous ones are on their way. The batch counts as written
            # (and is committed) only once every part is.
            futures = [self._pool.submit(self._write, part) for part in parts]
            wait(futures)
            rejections = []
            for future in futures:
                rejections += future.result()  # raises the first part's failure, if any
        self._drops.poll()
        return rejections

    def close(self) -> None:
        self._pool.shutdown()
        if self._own_client:
            self._client.close()

    def _write(self, records: list[SinkRecord[VmRecord]]) -> list[Rejection[SinkRecord[Any]]]:
        """Send ``records``; on a content error, bisect to find and reject the culprits."""
        if not records:
            return []
        body = self._body(r.decoded for r in records)
        if not body:  # events without samples: nothing to store, no request
            return []
        response = self._post(body)
        if response is None:
            return []
        if len(records) == 1:
            record = records[0]
            reason = (
                f"VictoriaMetrics refused the record: HTTP {response.status_code}:"
                f" {response.text[:500]}"
            )
            return [Rejection(record, reason, "VictoriaMetricsRejected")]
        log.info(
            "VictoriaMetrics refused a batch of %d (HTTP %d); bisecting",
            len(records),
            response.status_code,
        )
        middle = len(records) // 2
        return self._write(records[:middle]) + self._write(records[middle:])

    def _post(self, body: bytes) -> httpx.Response | None:
        """None when stored; the response when its content was refused.

        Raises:
            SinkUnavailableError: the server is down, failing or overloaded.
            SinkFatalError: the server refuses every request (auth, wrong URL).
        """
        try:
            if self.wire_format == "remote_write":
                body = bytes(cramjam.snappy.compress_raw(body))
            elif self._compress_level > 0:
                body = gzip.compress(body, self._compress_level)
            response = self._client.post(
                self._write_url,
                content=body,
                headers=self._headers,
            )
        except httpx.TransportError as exc:
            raise SinkUnavailableError(
                f"VictoriaMetrics at {self._write_url} did not answer: {type(exc).__name__}: {exc}"
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return None
        if status in _RECORD_LEVEL:
            return response
        if status in _TRANSIENT_4XX or status == 503:
            raise SinkBackpressureError(
                _retry_after(response, 1.0), f"VictoriaMetrics answered HTTP {status}"
            )
        if status >= 500:
            raise SinkUnavailableError(
                f"VictoriaMetrics answered HTTP {status}: {response.text[:200]}"
            )
        raise SinkFatalError(
            f"VictoriaMetrics at {self._write_url} refused the write with HTTP {status}"
            f" ({response.text[:200]}); check HOSTSTREAM_VM_URL and its credentials"
        )

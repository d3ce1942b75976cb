"""BatchProcessor with a dict for a table and lists for the topics: no Kafka."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from hoststream.config import Settings
from hoststream.dead_letters import Rejection
from hoststream.errors import StreamsError
from hoststream.schemas import MetricEvent, MetricKind, Sample, WindowAggregate, codec_for
from hoststream.streams import processor as processor_module
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.processor import BatchProcessor, is_state_key
from hoststream.streams.state import FamilyState, StateRecords
from tests.support.doubles.faust import Message

T0 = 1_798_761_600_000
NAN = float("nan")
SETTINGS = Settings(schema_registry_url=None)
SERIALIZE = codec_for(SETTINGS, MetricEvent).serializer


def message(host: str, ts: int, value: float, partition: int = 0, family: str = "system"):
    event = MetricEvent(host, family, ts, (Sample("node_load1", value),))
    return Message(f"metrics.{family}", partition, SERIALIZE(event))


def state_of(table: dict[bytes, bytes], key: bytes) -> FamilyState:
    """The state as a restarted worker would read it back from the table."""
    header = table[key]
    segments = [table[key + b"\x1f%d" % s] for s in StateRecords.segment_starts(header)]
    return StateRecords.restore(header, table.get(key + b"\x1fs"), segments)


class Harness:
    def __init__(self, windows=("1m",), table: dict[bytes, bytes] | None = None, **agg) -> None:
        self.table: dict[bytes, bytes] = {} if table is None else table
        # The table's contents each time the processor waited for its writes to be stored.
        self.stored: list[dict[bytes, bytes]] = []
        self.emitted: list[WindowAggregate] = []
        # Per emit: (windows, how many times the table's writes had been stored by then).
        self.emits: list[tuple[int, int]] = []
        self.alerts: list = []
        self.rejected: list[tuple[Message, Rejection]] = []
        self.now = T0
        aggregator = WindowAggregator(
            windows, grace_ms=10_000, metrics=StreamMetrics(CollectorRegistry()), **agg
        )

        async def emit(closed, alerts) -> None:
            self.emits.append((len(closed), len(self.stored)))
            self.emitted += closed.aggregates()
            self.alerts += alerts

        async def reject(rejection: Rejection[Message]) -> None:
            self.rejected.append((rejection.record, rejection))

        async def stored() -> None:
            self.stored.append(dict(self.table))

        self.processor = BatchProcessor(
            aggregator,
            self.table,
            decode=codec_for(SETTINGS, MetricEvent).deserializer,
            emit=emit,
            reject=reject,
            family_of_topic={"metrics.system": "system", "metrics.cpu": "cpu"},
            clock_ms=lambda: self.now,
            stored=stored,
        )

    def process(self, messages) -> int:
        return asyncio.run(self.processor.process(messages))

    def tick(self, partitions=(0, 1)) -> int:
        return asyncio.run(self.processor.close_quiet(partitions))


def test_batch_writes_one_state_per_host_and_family() -> None:
    h = Harness()
    h.process([message("a", T0 + i * 10_000, i, partition=0) for i in range(8)]
              + [message("b", T0, 1.0, partition=1)])  # fmt: skip
    assert {k for k in h.table if is_state_key(k)} == {b"0|system|a", b"1|system|b"}
    assert [(a.host, a.count) for a in h.emitted] == [("a", 6)]
    assert state_of(h.table, b"0|system|a").watermark == T0 + 70_000


def test_a_batch_counts_as_done_only_once_its_state_writes_are_stored() -> None:
    h = Harness()
    h.process([message("a", T0 + i * 10_000, i) for i in range(8)])
    # Waited for twice: for the window it closed before any record of the
    # batch was written, and once every record was written.
    assert h.stored == [{}, h.table]
    h.now = T0 + 10 * 60_000  # the host went quiet: the timer closes its last window
    assert h.tick() == 1
    assert len(h.stored) == 4
    assert h.stored[-2] != h.table  # its window stored before its state moved on
    assert h.stored[-1] == h.table


def test_undecodable_and_misrouted_messages_are_rejected() -> None:
    h = Harness()
    wrong_family = message("a", T0, 1.0, family="cpu")
    wrong_family.topic = "metrics.system"
    h.process([Message("metrics.system", 0, b"\x00garbage"), wrong_family])
    assert [m for m, _ in h.rejected] == [
        Message("metrics.system", 0, b"\x00garbage"),
        wrong_family,
    ]
    assert [r.error_class for _, r in h.rejected] == ["SerializationError", "WrongTopic"]
    assert "a 'cpu' event on topic 'metrics.system'" in h.rejected[1][1].reason
    assert h.table == {}


def test_state_of_the_earlier_json_format_stops_the_worker_with_what_to_do() -> None:
    h = Harness()
    # What the processor before the binary state wrote under the same key.
    h.table[b"0|system|a"] = b'{"family":"system","host":"a","panes":[],"rollups":[]}'
    with pytest.raises(StreamsError, match="JSON format of an earlier hoststream") as raised:
        h.process([message("a", T0, 1.0, partition=0)])
    assert "HOSTSTREAM_STREAM_APP_ID" in str(raised.value)
    assert h.emitted == []


def test_quiet_host_is_closed_by_the_timer_only_on_owned_partitions() -> None:
    h = Harness()
    h.process([message("a", T0 + i * 10_000, i, partition=0) for i in range(3)]
              + [message("b", T0 + i * 10_000, i, partition=1) for i in range(3)])  # fmt: skip
    h.now = T0 + 60_000 + 10_000 - 1  # window end + grace not reached
    assert h.tick() == 0
    h.now = T0 + 20_000 + 20_000  # quiet for the quiet period, window still open
    assert h.tick() == 0
    h.now = T0 + 70_000
    assert h.tick(partitions=[1]) == 1
    assert [a.host for a in h.emitted] == ["b"]
    assert h.tick(partitions=[0, 1]) == 1
    assert [a.host for a in h.emitted] == ["b", "a"]
    assert state_of(h.table, b"0|system|a").chunks == []


def test_host_still_reporting_is_not_closed_on_wall_clock() -> None:
    h = Harness()
    h.process([message("a", T0, 1.0)])
    h.now = T0 + 3_600_000  # far past the window, but the host just reported
    h.process([message("a", T0 + 10_000, 2.0)])
    assert h.tick() == 0
    h.now += 20_000
    assert h.tick() == 1


def test_restart_forgets_wall_clock_and_waits_a_full_quiet_period() -> None:
    h = Harness()
    h.process([message("a", T0, 1.0)])
    fresh = Harness()  # a new process: same table, no memory of when "a" was last seen
    fresh.table.update(h.table)
    fresh.now = T0 + 3_600_000
    assert fresh.tick() == 0  # might still have a backlog to deliver
    fresh.now += 20_000
    assert fresh.tick() == 1


def test_event_far_ahead_of_the_clock_is_rejected_not_aggregated() -> None:
    h = Harness()
    # The validation contract's default: 600 s ahead at most.
    h.process([message("a", T0 + 600_001, 1.0), message("a", T0 + 600_000, 2.0)])
    ((_, rejection),) = h.rejected
    assert rejection.error_class == "FutureTimestamp"
    assert "check the clock of host 'a'" in rejection.reason
    assert state_of(h.table, b"0|system|a").watermark == T0 + 600_000


def test_an_event_breaking_the_validation_contract_is_rejected_whole() -> None:
    h = Harness()
    bad = [
        MetricEvent("a", "system", T0, (Sample("node_load1", 1.0), Sample("node_load5", NAN))),
        MetricEvent("a", "system", 0, (Sample("node_load1", 1.0),)),  # 1970
        MetricEvent("h" * 10_000, "system", T0, (Sample("node_load1", 1.0),)),
        MetricEvent("a", "system", T0, (Sample("node_intr_total", -1.0, {}, MetricKind.COUNTER),)),
        MetricEvent("a", "system", T0, (Sample("m", 1.0, {f"l{i}": "x" for i in range(10_000)}),)),
    ]
    h.process([Message("metrics.system", 0, SERIALIZE(event)) for event in bad])
    assert [r.error_class for _, r in h.rejected] == [
        "NonFiniteValue",
        "StaleTimestamp",
        "InvalidHostId",
        "NegativeCounter",
        "TooManyLabels",
    ]
    assert h.table == {}
    assert h.emitted == []


def test_a_window_closes_at_end_plus_grace_without_waiting_for_the_hosts_next_events() -> None:
    h = Harness()  # 1m windows, 10 s grace
    # The host reports every 10 s and, as the producer does, stamps each
    # collection a little ahead of the moment it arrives.
    for i in range(7):
        h.now = T0 + i * 10_000 - 3_000
        h.process([message("a", T0 + i * 10_000, float(i))])
    assert h.emitted == []  # event time alone would wait for the event stamped T0 + 70 s
    h.now = T0 + 60_000 + 10_000 - 1
    assert h.tick() == 0
    h.now = T0 + 60_000 + 10_000
    assert h.tick() == 1
    ((window),) = [(a.window_start, a.count) for a in h.emitted]
    assert window == (T0, 6)


def test_a_host_whose_events_run_late_keeps_its_lag_before_wall_clock_closes() -> None:
    h = Harness()
    # Events arrive 30 s after their timestamps (a slow clock or a delayed producer).
    for i in range(7):
        h.now = T0 + i * 10_000 + 30_000
        h.process([message("a", T0 + i * 10_000, float(i))])
    h.now = T0 + 70_000 + 30_000 - 1  # end + grace + its lag, not yet
    assert h.tick() == 0
    h.now = T0 + 70_000 + 30_000
    assert h.tick() == 1


def test_a_partition_read_to_its_end_only_as_of_an_earlier_time_is_judged_at_that_time() -> None:
    h = Harness()  # 1m windows, 10 s grace
    for i in range(7):
        h.now = T0 + i * 10_000 - 3_000
        h.process([message("a", T0 + i * 10_000, float(i))])
    h.now = T0 + 70_000 + 5_000  # the first window is due by now...
    # ...but the partition is known read to its end only as of a moment before:
    # a message of the host appended since may still be unread.
    assert asyncio.run(h.processor.close_quiet([0], read_until={0: T0 + 70_000 - 1})) == 0
    assert asyncio.run(h.processor.close_quiet([0], read_until={0: T0 + 70_000})) == 1
    assert [(a.window_start, a.count) for a in h.emitted] == [(T0, 6)]


def test_each_partition_says_when_it_may_next_have_a_window_to_close() -> None:
    h = Harness()  # 1m windows, 10 s grace
    assert h.processor.due_ms() == {}  # nothing looked at yet: no promise
    for i in range(7):
        h.now = T0 + i * 10_000 - 3_000
        h.process([message("a", T0 + i * 10_000, float(i))])
    # The first window's end plus grace (the host is not behind the clock).
    assert h.processor.due_ms() == {0: T0 + 70_000}
    h.now = T0 + 70_000
    assert h.tick(partitions=(0, 1)) == 1
    # The next window's, and a partition holding no state has nothing due.
    assert h.processor.due_ms() == {0: T0 + 130_000, 1: processor_module._NEVER}


def test_the_timer_closes_many_states_in_slices_each_emitted_before_its_states_are_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts = [f"h{i}" for i in range(5)]
    batch = [message(host, T0 + i * 10_000, i) for host in hosts for i in range(3)]
    whole = Harness()
    whole.process(batch)
    whole.now = T0 + 10 * 60_000
    assert whole.tick() == 5
    monkeypatch.setattr(processor_module, "_CLOSE_SLICE_SAMPLES", 6)  # two states a slice
    sliced = Harness()
    sliced.process(batch)
    sliced.now = T0 + 10 * 60_000
    assert sliced.tick() == 5
    # The batch (three slices closing nothing, one wait once its states were
    # written), then the timer's three slices, each emitted once the slice
    # before was stored: its windows, then its states.
    assert sliced.emits == [(0, 0)] * 3 + [(2, 1), (2, 3), (1, 5)]
    assert len(sliced.stored) == 1 + 3 * 2
    assert sliced.emitted == whole.emitted
    assert sliced.table == whole.table


def test_a_batch_closing_in_several_slices_waits_once_for_their_windows_before_writing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processor_module, "_CLOSE_SLICE_SAMPLES", 6)  # a slice per state here
    h = Harness()
    # Five hosts, each crossing the end of its first minute in this batch.
    h.process([message(f"h{n}", T0 + i * 10_000, i) for n in range(5) for i in range(8)])
    assert h.emits == [(1, 0)] * 5  # a state of 8 samples fills a slice
    # One round trip for every slice's windows, with no state written yet,
    # then one for the states.
    assert h.stored == [{}, h.table]
    assert sorted(a.host for a in h.emitted) == [f"h{n}" for n in range(5)]


def test_panes_held_as_sketches_are_written_and_a_restarted_worker_goes_on_from_them() -> None:
    # A sample every second and at most 20 kept exactly: each closed minute
    # is held as a sketch until its 5m window closes.
    batches = [
        [message("a", T0 + (i + j) * 1_000, float((i + j) % 37)) for j in range(15)]
        for i in range(0, 7 * 60, 15)
    ]
    closer = [message("a", T0 + 20 * 60_000, 0.0)]
    straight = Harness(("1m", "5m"), exact_samples=20)
    for batch in [*batches, closer]:
        straight.process(batch)
    assert {a.quantile_relative_error for a in straight.emitted} == {0.01}

    first = Harness(("1m", "5m"), exact_samples=20)
    for batch in batches[:12]:  # three minutes: two closed and held as sketches
        first.process(batch)
    key = next(k for k in first.table if is_state_key(k))
    held = first.processor._states[key]
    assert sorted(held.sketches) == [T0, T0 + 60_000]
    restored = state_of(first.table, key)
    assert {s: k.to_bytes() for s, k in restored.sketches.items()} == {
        s: k.to_bytes() for s, k in held.sketches.items()
    }
    assert restored.open_samples == held.open_samples
    # A new worker over the same table, as after kill -9 once the batch was stored.
    second = Harness(("1m", "5m"), table=first.table, exact_samples=20)
    for batch in [*batches[12:], closer]:
        second.process(batch)
    assert first.emitted + second.emitted == straight.emitted


@pytest.mark.parametrize("size_ms", [10_000, 60_000, 300_000])
def test_every_window_size_closes_at_end_plus_grace_without_the_hosts_next_sample(
    size_ms: int,
) -> None:
    h = Harness(("10s", "1m", "5m"))
    end = T0 + 300_000  # the end of a window of every size
    # Every 10 s up to the last collection before ``end``, each stamped a little
    # ahead of its arrival; the host then sends nothing more.
    for ts in range(T0, end, 10_000):
        h.now = ts - 3_000
        h.process([message("a", ts, 1.0)])
        h.tick()
    last = end - size_ms

    def emitted_last() -> list[int]:
        return [
            a.count for a in h.emitted if a.window_size_ms == size_ms and a.window_start == last
        ]

    h.now = end + 10_000 - 1
    h.tick()
    assert emitted_last() == []
    h.now = end + 10_000  # end + grace
    h.tick()
    assert emitted_last() == [size_ms // 10_000]


def test_a_state_taken_over_after_a_pass_is_looked_at_by_the_next_pass() -> None:
    h = Harness()
    h.process([message("a", T0, 1.0)])
    h.now = T0 + 3_600_000
    assert h.tick() == 1  # a pass over every state: "a"'s window closes
    # Another worker's state arrives in the table, as a rebalance restores it.
    other = Harness()
    other.process([message("b", T0, 2.0)])
    h.table.update(other.table)
    assert h.tick() == 0  # restored just now: its host gets a full quiet period
    h.now += 20_000
    assert h.tick() == 1
    assert [(a.host, a.count) for a in h.emitted] == [("a", 1), ("b", 1)]

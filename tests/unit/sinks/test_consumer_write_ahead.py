"""The consumer loop with a write-ahead sink, over the in-memory doubles in ``doubles.py``.

A write-ahead sink's batch is written on the loop's writer thread while the
next batch is consumed and decoded; its offsets are committed only once that
write returned.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from hoststream.dead_letters import Rejection
from hoststream.errors import SinkUnavailableError
from hoststream.sinks.base import SinkRecord
from tests.support.doubles.kafka import (
    IntDecoder,
    RecordingSink,
    partition_log,
)
from tests.support.sink_loop import SinkLoopRig, values


class AheadSink(RecordingSink):
    """A RecordingSink whose writes run ahead; each write waits for ``gate`` when it is set up."""

    write_ahead = True

    def __init__(self) -> None:
        super().__init__()
        self.gate: threading.Event | None = None
        self.writing = threading.Event()
        self.threads: set[str] = set()

    def write(self, batch: Sequence[SinkRecord[int]]) -> Sequence[Rejection]:
        self.threads.add(threading.current_thread().name)
        self.writing.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        return super().write(batch)


class CountingDecoder(IntDecoder):
    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def __call__(self, topic: str, value: bytes | None, headers) -> int:
        self.decoded += 1
        return super().__call__(topic, value, headers)


def ahead_rig(logs, **policy) -> SinkLoopRig[AheadSink, CountingDecoder]:
    return SinkLoopRig(logs, sink=AheadSink(), decoder=CountingDecoder(), **policy)


def test_a_batch_is_committed_only_after_its_write_returned_while_the_next_is_decoded() -> None:
    rig = ahead_rig({("m", 0): partition_log("m", 0, values(*range(12)))})
    rig.sink.gate = threading.Event()
    rig.steps(1)  # batch 0-3 handed to the writer thread, which waits at the gate
    assert rig.sink.writing.wait(10)
    assert rig.consumer.commits == []
    decoded_before_release: list[int] = []

    def open_gate_once_the_next_batch_is_decoded() -> None:
        for _ in range(1000):
            if rig.decoder.decoded >= 8:
                break
            threading.Event().wait(0.01)
        decoded_before_release.append(rig.decoder.decoded)
        assert rig.sink.gate is not None
        rig.sink.gate.set()

    opener = threading.Thread(target=open_gate_once_the_next_batch_is_decoded)
    opener.start()
    rig.steps(1)  # decodes 4-7 while 0-3 is being written, then commits 0-3
    opener.join()
    assert decoded_before_release == [8]
    assert rig.consumer.committed == {("m", 0): 4}
    rig.steps(1)
    assert rig.consumer.committed == {("m", 0): 8}
    assert rig.loop.drain()
    assert rig.sink.writes == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert rig.consumer.committed == {("m", 0): 12}
    assert rig.sink.threads == {"recording-write_0"}


def test_a_failed_write_ahead_is_written_again_with_the_next_records_before_any_commit() -> None:
    rig = ahead_rig({("m", 0): partition_log("m", 0, values(*range(8)))})
    rig.sink.failures = [SinkUnavailableError("down")]
    rig.steps(1)  # 0-3 in flight; their write fails
    rig.steps(1)  # 4-7 decoded; settling 0-3 finds the failure
    assert rig.consumer.commits == []
    assert rig.loop.paused
    assert rig.loop.buffered == 8
    for _ in range(50):
        rig.loop.step()
        if rig.consumer.commits:
            break
    assert rig.sink.writes == [[0, 1, 2, 3], list(range(8))]
    assert rig.consumer.committed == {("m", 0): 8}
    assert not rig.loop.paused
    assert rig.sink.stored == list(range(8))


def test_dead_letters_of_decoding_and_of_the_write_are_sent_before_the_commit() -> None:
    rig = ahead_rig(
        {("m", 0): partition_log("m", 0, [b"1", b"-5", b"13", b"2", b"x", b"3", b"4", b"5"])}
    )
    rig.steps(2)
    assert rig.consumer.committed == {("m", 0): 4}
    assert [m["value"] for m in rig.producer.sent] == [b"-5", b"13"]
    assert rig.loop.drain()
    assert [m["value"] for m in rig.producer.sent] == [b"-5", b"13", b"x"]
    assert rig.consumer.committed == {("m", 0): 8}
    assert rig.sink.stored == [1, 2, 3, 4, 5]


def test_an_unacknowledged_dead_letter_holds_the_commit_and_the_next_batch() -> None:
    rig = ahead_rig(
        {("m", 0): partition_log("m", 0, [b"1", b"bad", b"2", b"3", b"4", b"5", b"6", b"7"])}
    )
    rig.producer.fail = 1
    rig.steps(2)  # 0-3 written, its dead letter not acknowledged; 4-7 held back
    assert rig.consumer.commits == []
    assert rig.loop.paused
    for _ in range(50):
        rig.loop.step()
        if not rig.loop.paused:
            break
    assert rig.consumer.committed == {("m", 0): 4}
    assert rig.loop.drain()  # waits for the write of 4-7, which the loop started meanwhile
    assert rig.consumer.committed == {("m", 0): 8}
    assert rig.sink.writes == [[1, 2, 3], [4, 5, 6, 7]]  # each written once
    assert [m["value"] for m in rig.producer.sent] == [b"bad"]


def test_revoke_settles_the_batch_in_flight_before_the_partitions_go() -> None:
    logs = {
        ("m", 0): partition_log("m", 0, values(1, 2)),
        ("m", 1): partition_log("m", 1, values(3, 4)),
    }
    rig = ahead_rig(logs, max_records=4, max_delay_s=60)
    rig.steps(1)  # 1-4 in flight
    rig.consumer.revoke(("m", 1))
    rig.steps(1)
    assert rig.consumer.committed == {("m", 0): 2, ("m", 1): 2}
    assert rig.consumer.assigned == {("m", 0)}
    assert rig.loop.buffered == 0


def test_stop_waits_for_the_write_in_flight_and_commits_it() -> None:
    rig = ahead_rig({("m", 0): partition_log("m", 0, values(*range(4)))}, max_delay_s=60)
    rig.sink.gate = threading.Event()
    threading.Timer(0.2, rig.sink.gate.set).start()  # the write is still running at the stop
    stop = threading.Event()
    real_step = rig.loop.step

    def step_then_stop() -> None:
        real_step()
        stop.set()

    rig.loop.step = step_then_stop  # type: ignore[method-assign]
    rig.loop.run(stop)
    assert rig.sink.stored == list(range(4))
    assert rig.consumer.committed == {("m", 0): 4}
    assert rig.sink.closed


class TwoAheadSink(AheadSink):
    """An AheadSink with two batches in flight; write ``n`` waits for ``gates[n]`` if given."""

    batches_in_flight = 2

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[threading.Event] = []
        self.returned: list[int] = []  # write numbers, in the order they returned
        self._calls = 0
        self._lock = threading.Lock()

    def write(self, batch: Sequence[SinkRecord[int]]) -> Sequence[Rejection]:
        with self._lock:
            call, self._calls = self._calls, self._calls + 1
        if call < len(self.gates):
            assert self.gates[call].wait(10), "the test never opened the gate"
        try:
            return super().write(batch)
        finally:
            self.returned.append(call)


def two_ahead_rig(logs, **policy) -> SinkLoopRig[TwoAheadSink, CountingDecoder]:
    return SinkLoopRig(logs, sink=TwoAheadSink(), decoder=CountingDecoder(), **policy)


def wait_until(condition) -> None:
    for _ in range(1000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("timed out")


def test_two_batches_in_flight_are_committed_in_the_order_they_were_read() -> None:
    rig = two_ahead_rig({("m", 0): partition_log("m", 0, values(*range(8)))})
    rig.sink.gates = [threading.Event(), threading.Event()]
    rig.steps(2)  # 0-3, then 4-7 sent off without waiting for the first write
    wait_until(lambda: rig.decoder.decoded == 8)
    assert rig.consumer.commits == []
    rig.sink.gates[1].set()  # the later batch is stored first
    wait_until(lambda: rig.sink.returned == [1])
    rig.steps(1)
    assert rig.consumer.commits == []  # not past the batch still being written
    rig.sink.gates[0].set()
    wait_until(lambda: rig.sink.returned == [1, 0])
    rig.steps(1)
    assert rig.consumer.commits == [{("m", 0): 4}, {("m", 0): 8}]
    assert len(rig.sink.threads) == 2


def test_a_failed_write_takes_back_the_batch_in_flight_after_it_and_both_are_rewritten() -> None:
    rig = two_ahead_rig({("m", 0): partition_log("m", 0, values(*range(8)))})
    rig.sink.failures = [SinkUnavailableError("down")]
    rig.sink.gates = [threading.Event(), threading.Event()]
    rig.steps(2)  # both sent off
    rig.sink.gates[0].set()
    wait_until(lambda: rig.sink.returned == [0])  # the first fails
    rig.sink.gates[1].set()
    wait_until(lambda: rig.sink.returned == [0, 1])  # the second is stored
    rig.steps(1)  # settling the first finds its failure
    assert rig.loop.paused
    assert rig.consumer.commits == []
    assert rig.loop.buffered == 8
    for _ in range(50):
        rig.loop.step()
        if rig.consumer.commits:
            break
    # The second batch was stored, but not committed: written again with the first.
    assert rig.sink.writes[2:] == [list(range(8))]
    assert rig.consumer.commits == [{("m", 0): 8}]


def test_with_a_write_in_flight_the_loop_polls_briefly_to_commit_it_soon() -> None:
    rig = ahead_rig({("m", 0): partition_log("m", 0, values(1, 2, 3))}, max_delay_s=1.0)
    rig.sink.gate = threading.Event()
    for _ in range(10):  # a batch short of full, written once a second old
        rig.steps(1)
        if rig.sink.writing.is_set():
            break
    assert rig.sink.writing.is_set()
    before = rig.clock.now
    rig.steps(1)  # nothing to read: the poll waits its timeout
    assert rig.clock.now - before <= 0.02
    rig.sink.gate.set()
    wait_until(lambda: rig.sink.stored == [1, 2, 3])
    rig.steps(1)
    assert rig.consumer.committed == {("m", 0): 3}
    before = rig.clock.now
    rig.steps(1)  # nothing in flight, nothing held: the usual poll
    assert rig.clock.now - before == pytest.approx(0.25)


def test_after_a_backlog_an_idle_loop_polls_as_usual() -> None:
    rig = ahead_rig({("m", 0): partition_log("m", 0, values(*range(4)))})
    rig.steps(1)  # a full batch: behind
    wait_until(lambda: rig.sink.stored == [0, 1, 2, 3])
    rig.steps(2)  # commits it; reads nothing, holds nothing: caught up
    assert rig.consumer.committed == {("m", 0): 4}
    before = rig.clock.now
    rig.steps(1)
    assert rig.clock.now - before == pytest.approx(0.25)

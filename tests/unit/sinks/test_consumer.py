"""The consumer loop, over the in-memory doubles in ``doubles.py``."""

from __future__ import annotations

import itertools
import threading

import pytest
from confluent_kafka import TopicPartition

from hoststream.dead_letters import (
    HEADER_ERROR,
    HEADER_ERROR_CLASS,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
)
from hoststream.errors import SinkBackpressureError, SinkFatalError, SinkUnavailableError
from hoststream.sinks.retry import Backoff
from tests.support.doubles.kafka import (
    IntDecoder,
    RecordingSink,
    partition_log,
)
from tests.support.sink_loop import SinkLoopRig, values


def recording_rig(logs, **policy) -> SinkLoopRig[RecordingSink, IntDecoder]:
    return SinkLoopRig(logs, sink=RecordingSink(), decoder=IntDecoder(), **policy)


def test_full_batches_are_written_then_committed() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, values(*range(10)))})
    rig.steps(2)
    assert rig.sink.writes == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert rig.consumer.committed == {("m", 0): 8}
    assert rig.metric("hoststream_sink_records_written_total") == 8
    assert rig.metric("hoststream_sink_batch_write_seconds_count") == 2


def test_the_rest_of_a_backlog_is_written_once_every_partition_is_read_to_its_end() -> None:
    rig = recording_rig(
        {
            ("m", 0): partition_log("m", 0, values(*range(6))),
            ("m", 1): partition_log("m", 1, values(10, 11)),
        },
        max_delay_s=60.0,
    )
    rig.steps(2)
    # The second batch is not full, but nothing more is there to fill it.
    assert rig.sink.writes == [[0, 1, 2, 3], [4, 5, 10, 11]]
    assert rig.consumer.committed == {("m", 0): 6, ("m", 1): 2}


def test_a_partial_batch_waits_for_its_delay_while_a_partition_has_more_to_read() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, values(*range(6)))}, max_delay_s=60.0)
    high = rig.consumer.get_watermark_offsets
    # The last fetch saw more than was delivered: not caught up.
    rig.consumer.get_watermark_offsets = lambda tp, cached=False, timeout=None: (0, 9)
    rig.steps(3)
    assert rig.sink.writes == [[0, 1, 2, 3]]
    rig.consumer.get_watermark_offsets = high
    rig.steps(1)
    assert rig.sink.writes == [[0, 1, 2, 3], [4, 5]]


def test_without_a_backlog_a_partial_batch_waits_for_its_delay() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, values(1, 2))}, max_delay_s=2.0)
    rig.steps(1)
    assert rig.sink.writes == []  # read to the end, but no full batch came before it


def test_a_partial_batch_is_written_when_its_time_is_up() -> None:
    rig = recording_rig(
        {("m", 0): partition_log("m", 0, values(1, 2))}, max_records=100, max_delay_s=2.0
    )
    rig.steps(1)
    assert rig.sink.writes == []
    rig.steps(20)  # each empty poll advances the fake clock by the poll timeout
    assert rig.sink.writes == [[1, 2]]
    assert rig.consumer.committed == {("m", 0): 2}


def test_nothing_is_committed_while_the_destination_is_down_and_partitions_pause() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, values(*range(6)))})
    rig.sink.failures = [SinkUnavailableError("down"), SinkUnavailableError("still down")]
    rig.steps(1)
    assert rig.consumer.commits == []
    assert rig.loop.paused
    assert rig.consumer.paused == {("m", 0)}
    assert rig.metric("hoststream_sink_paused") == 1
    # Polls go on while paused (membership stays alive) but bring nothing new.
    rig.steps(3)
    assert rig.loop.buffered == 4
    for _ in range(100):
        rig.loop.step()
        if not rig.loop.paused:
            break
    assert not rig.loop.paused
    assert rig.consumer.paused == set()
    assert rig.sink.writes[:3] == [[0, 1, 2, 3]] * 3
    assert rig.consumer.committed == {("m", 0): 4}
    assert rig.metric("hoststream_sink_write_retries_total") == 2
    rig.steps(20)
    assert rig.sink.stored == [0, 1, 2, 3, 4, 5]
    assert rig.consumer.committed == {("m", 0): 6}


def test_retries_back_off_exponentially_and_honour_retry_after() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, values(*range(4)))})
    rig.sink.failures = [
        SinkUnavailableError("a"),
        SinkUnavailableError("b"),
        SinkBackpressureError(20.0),
    ]
    attempts: list[float] = []
    while not rig.sink.stored and rig.clock.now < 2000:
        before = len(rig.sink.writes)
        rig.loop.step()
        if len(rig.sink.writes) > before:
            attempts.append(rig.clock.now)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(attempts)]
    # rand() == 1.0: delays are the ceilings 1, 2, then 20 from retry_after (over 4).
    assert [round(g) for g in gaps] == [1, 2, 20]


def test_undecodable_and_invalid_records_go_to_the_dead_letter_topic() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, [b"1", b"\x00garbage", b"-5", b"13"])})
    rig.steps(1)
    assert rig.sink.stored == [1]
    assert rig.consumer.committed == {("m", 0): 4}
    sent = rig.producer.sent
    assert [m["value"] for m in sent] == [b"\x00garbage", b"-5", b"13"]
    assert {m["topic"] for m in sent} == {"m.dlq"}
    first = dict(sent[0]["headers"])
    assert first["h"] == b"1"  # the original headers travel on
    assert first[HEADER_SOURCE_TOPIC] == b"m"
    assert first[HEADER_SOURCE_PARTITION] == b"0"
    assert first[HEADER_SOURCE_OFFSET] == b"1"
    assert first[HEADER_ERROR_CLASS] == b"SerializationError"
    assert b"not an int" in first[HEADER_ERROR]
    assert dict(sent[1]["headers"])[HEADER_ERROR_CLASS] == b"InvalidRecordError"
    assert (
        rig.metric("hoststream_sink_records_dead_lettered_total", error="SerializationError") == 1
    )
    assert rig.metric("hoststream_sink_records_written_total") == 1


def test_an_unacknowledged_dead_letter_holds_the_commit_without_rewriting() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, [b"1", b"bad", b"2", b"3"])})
    rig.producer.fail = 1
    rig.steps(1)
    assert rig.consumer.commits == []
    assert rig.loop.paused
    for _ in range(50):
        rig.loop.step()
        if rig.consumer.commits:
            break
    assert rig.consumer.committed == {("m", 0): 4}
    assert rig.sink.writes == [[1, 2, 3]]  # stored once; only the dead letter was retried
    assert [m["value"] for m in rig.producer.sent] == [b"bad"]


def test_an_unavailable_registry_is_retried_not_dead_lettered() -> None:
    rig = recording_rig(
        {("m", 0): partition_log("m", 0, [b"1", b"registry-down"])}, max_delay_s=0.1
    )
    rig.decoder.down = 2
    for _ in range(100):
        rig.loop.step()
        if rig.consumer.commits:
            break
    assert rig.producer.sent == []
    assert rig.sink.stored == [1, 7]
    assert rig.metric("hoststream_sink_write_retries_total") == 2


def test_revoke_flushes_and_commits_what_is_held_for_revoked_partitions() -> None:
    logs = {
        ("m", 0): partition_log("m", 0, values(1, 2)),
        ("m", 1): partition_log("m", 1, values(3)),
    }
    rig = recording_rig(logs, max_records=100, max_delay_s=60)
    rig.steps(1)
    assert rig.loop.buffered == 3
    rig.consumer.revoke(("m", 1))
    rig.steps(1)
    assert sorted(rig.sink.stored) == [1, 2, 3]
    assert rig.consumer.committed == {("m", 0): 2, ("m", 1): 1}
    assert rig.consumer.assigned == {("m", 0)}


def test_offsets_a_rebalance_refused_are_committed_when_their_partitions_are_revoked() -> None:
    logs = {
        ("m", 0): partition_log("m", 0, values(1, 2)),
        ("m", 1): partition_log("m", 1, values(3)),
    }
    rig = recording_rig(logs, max_records=3)
    rig.consumer.refuse_commits = 1
    rig.steps(1)
    assert sorted(rig.sink.stored) == [1, 2, 3]
    assert rig.consumer.committed == {}  # written, the commit refused
    rig.consumer.revoke(("m", 1))
    rig.steps(1)
    # Committed while still ours: the next owner does not write them again.
    assert rig.consumer.committed == {("m", 0): 2, ("m", 1): 1}
    assert sorted(rig.sink.stored) == [1, 2, 3]


def test_offsets_a_rebalance_refused_are_committed_again_without_waiting_for_a_batch() -> None:
    logs = {("m", 0): partition_log("m", 0, values(1, 2))}
    rig = recording_rig(logs, max_records=2)
    rig.consumer.refuse_commits = 1
    rig.steps(1)
    assert rig.consumer.committed == {}
    rig.clock.sleep(1.5)
    rig.steps(1)
    assert rig.consumer.committed == {("m", 0): 2}
    assert rig.sink.stored == [1, 2]


def test_revoke_while_down_drops_the_revoked_records_uncommitted() -> None:
    logs = {
        ("m", 0): partition_log("m", 0, values(1, 2)),
        ("m", 1): partition_log("m", 1, values(3)),
    }
    rig = recording_rig(logs, max_records=3)
    rig.sink.failures = [SinkUnavailableError("down")]
    rig.steps(1)
    assert rig.loop.paused
    rig.consumer.revoke(("m", 1))
    for _ in range(50):
        rig.loop.step()
        if rig.consumer.commits:
            break
    # The new owner of m/1 reads 3 again from its last commit; nothing of it is committed here.
    assert rig.consumer.committed == {("m", 0): 2}
    assert rig.sink.writes[-1] == [1, 2]


def test_partitions_assigned_while_paused_are_paused_too() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, values(1, 2, 3, 4))})
    rig.consumer.logs[("m", 1)] = partition_log("m", 1, values(5))
    rig.consumer.positions[("m", 1)] = 0
    rig.sink.failures = [SinkUnavailableError("down")] * 3
    rig.steps(1)
    rig.consumer.pending_assign = [("m", 1)]
    rig.steps(1)
    assert ("m", 1) in rig.consumer.paused
    assert rig.loop.buffered == 4


def test_a_partition_lost_while_paused_delivers_again_once_it_is_assigned_back() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, values(1, 2, 3, 4))})
    rig.sink.failures = [SinkUnavailableError("down")] * 2
    rig.steps(1)
    assert rig.consumer.paused == {("m", 0)}
    # Its cluster goes away: the partition is lost; librdkafka keeps it paused.
    rig.consumer.callbacks["lost"](rig.consumer, [TopicPartition("m", 0)])
    rig.consumer.paused.add(("m", 0))
    for _ in range(20):
        rig.steps(1)
        if not rig.loop.paused:
            break
    assert not rig.loop.paused
    rig.consumer.pending_assign = [("m", 0)]
    for _ in range(20):
        rig.steps(1)
        if rig.consumer.committed.get(("m", 0)) == 4:
            break
    assert rig.consumer.paused == set()
    assert rig.consumer.committed == {("m", 0): 4}


def test_stop_writes_and_commits_the_last_batch_then_closes() -> None:
    rig = recording_rig(
        {("m", 0): partition_log("m", 0, values(1, 2))}, max_records=100, max_delay_s=60
    )
    stop = threading.Event()
    real_step = rig.loop.step

    def step_then_stop() -> None:
        real_step()
        stop.set()

    rig.loop.step = step_then_stop  # type: ignore[method-assign]
    rig.sink.failures = [SinkUnavailableError("blip")]
    rig.loop.run(stop)
    assert rig.sink.stored == [1, 2]
    assert rig.consumer.committed == {("m", 0): 2}
    assert rig.consumer.closed
    assert rig.sink.closed


def test_stop_gives_up_after_the_shutdown_timeout_without_committing() -> None:
    rig = recording_rig(
        {("m", 0): partition_log("m", 0, values(1))}, max_records=100, max_delay_s=60
    )
    rig.steps(1)
    rig.sink.failures = [SinkUnavailableError("down")] * 1000
    assert rig.loop.drain() is False
    rig.loop.close()
    assert rig.consumer.commits == []


@pytest.mark.parametrize(
    ("attempt", "expected"), [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]
)
def test_backoff_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    backoff = Backoff(initial_s=1.0, max_s=8.0, rand=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(attempt + 1)]
    assert delays[-1] == expected


def test_backoff_jitter_keeps_half_of_the_delay() -> None:
    backoff = Backoff(initial_s=4.0, max_s=8.0, rand=lambda: 0.0)
    assert backoff.next_delay() == 2.0
    assert backoff.next_delay(at_least_s=5.0) == 5.0
    backoff.reset()
    assert backoff.attempts == 0


def test_a_fatal_error_stops_the_loop_without_committing_or_writing_again() -> None:
    rig = recording_rig(
        {("m", 0): partition_log("m", 0, values(1, 2))}, max_records=100, max_delay_s=0.1
    )
    rig.sink.failures = [SinkFatalError("bad credentials")]
    with pytest.raises(SinkFatalError):
        rig.loop.run(threading.Event())
    assert rig.consumer.commits == []
    assert rig.sink.writes == [[1, 2]]  # the revoke at close did not try again
    assert rig.consumer.closed


def test_consumer_lag_is_the_distance_from_the_commit_to_the_partition_end() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, values(*range(10)))}, max_records=4)
    rig.steps(1)  # one batch of 4 written and committed
    rig.clock.now += 10  # the lag gauge refreshes every 5 s
    rig.steps(1)
    assert rig.consumer.committed == {("m", 0): 8}
    assert rig.metric("hoststream_sink_consumer_lag", topic="m", partition="0") == 2


def test_messages_arriving_while_a_written_batch_awaits_its_commit_wait_for_the_next() -> None:
    rig = recording_rig({("m", 0): partition_log("m", 0, [b"1", b"bad", b"2", b"3", b"4", b"5"])})
    rig.producer.fail = 1  # the batch is stored, its dead letter is not acknowledged
    rig.steps(1)
    assert rig.loop.paused
    # librdkafka may still hand out what it fetched before the pause.
    rig.consumer.paused.clear()
    rig.steps(1)
    rig.consumer.paused.add(("m", 0))
    for _ in range(50):
        rig.loop.step()
        if rig.consumer.committed.get(("m", 0)) == 6:
            break
    assert rig.consumer.committed == {("m", 0): 6}
    assert rig.sink.writes[0] == [1, 2, 3]
    assert sorted(rig.sink.stored) == [1, 2, 3, 4, 5]

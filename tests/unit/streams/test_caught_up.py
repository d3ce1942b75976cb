"""Wall-clock closing waits until the worker has read its partitions to the end."""

from __future__ import annotations

from faust.types import TP

from hoststream.streams.app import caught_up_partitions
from hoststream.streams.caught_up import ReadHorizon

CPU0, MEM0, CPU1 = TP("metrics.cpu", 0), TP("metrics.memory", 0), TP("metrics.cpu", 1)


def test_a_partition_with_unread_messages_is_not_caught_up() -> None:
    highwaters = {CPU0: 10, MEM0: 4, CPU1: 7}
    processed = {("metrics.cpu", 0): 10, ("metrics.memory", 0): 3, ("metrics.cpu", 1): 7}
    # Partition 0's memory topic still has one message to read.
    assert caught_up_partitions([CPU0, MEM0, CPU1], highwaters, processed, {}) == {1}


def test_after_a_restart_the_committed_offset_stands_in_until_something_is_read() -> None:
    highwaters = {CPU0: 10, CPU1: 7}
    committed = {("metrics.cpu", 0): 10, ("metrics.cpu", 1): 5}
    assert caught_up_partitions([CPU0, CPU1], highwaters, {}, committed) == {0}


def test_empty_partitions_are_caught_up_and_unknown_ends_are_not() -> None:
    assert caught_up_partitions([CPU0, CPU1], {CPU0: 0}, {}, {}) == {0}


def test_a_partition_never_at_its_end_is_read_as_of_the_newest_mark_its_processing_reached() -> (
    None
):
    horizon = ReadHorizon()
    # Under steady load every look finds messages still unread...
    horizon.mark(1_000, {CPU0: 10})
    horizon.mark(2_000, {CPU0: 20})
    assert caught_up_partitions([CPU0], {CPU0: 20}, {("metrics.cpu", 0): 15}, {}) == set()
    # ...yet everything appended before a mark is read once its end is passed.
    assert horizon.read_until([CPU0], {("metrics.cpu", 0): 15}, {}) == {0: 1_000}
    assert horizon.read_until([CPU0], {("metrics.cpu", 0): 21}, {}) == {0: 2_000}


def test_a_partition_number_is_read_only_when_every_topic_of_it_is() -> None:
    horizon = ReadHorizon()
    horizon.mark(1_000, {CPU0: 10, MEM0: 4, CPU1: 7})
    processed = {("metrics.cpu", 0): 10, ("metrics.memory", 0): 3, ("metrics.cpu", 1): 7}
    assert horizon.read_until([CPU0, MEM0, CPU1], processed, {}) == {1: 1_000}
    # A partition taken over with nothing processed: its committed offset stands in.
    assert horizon.read_until([CPU0, MEM0, CPU1], {}, {("metrics.cpu", 1): 7}) == {1: 1_000}


def test_no_mark_no_reading_and_a_mark_from_a_clock_stepped_back_is_ignored() -> None:
    horizon = ReadHorizon()
    assert horizon.read_until([CPU0], {("metrics.cpu", 0): 10}, {}) == {}
    horizon.mark(5_000, {CPU0: 10})
    horizon.mark(4_000, {CPU0: 5})
    assert horizon.latest_ms == 5_000
    assert horizon.read_until([CPU0], {("metrics.cpu", 0): 7}, {}) == {}
    horizon.forget()
    assert horizon.latest_ms is None

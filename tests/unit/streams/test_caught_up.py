"""Wall-clock closing waits until the worker has read its partitions to the end."""

from __future__ import annotations

from faust.types import TP

from hoststream.streams.app import caught_up_partitions

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

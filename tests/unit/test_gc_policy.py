"""Unit tests: the collector settings of the components that move every sample."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from hoststream.gc_policy import YOUNG_THRESHOLD, tune_for_throughput, tuned_for_throughput


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_in_the_main_thread_it_freezes_what_exists_and_collects_the_young_less_often() -> None:
    survivor = [[]]  # a container that exists before the tuning
    assert tune_for_throughput() is True
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() > 0
    assert not any(obj is survivor for obj in gc.get_objects())  # frozen: never scanned


@pytest.mark.usefixtures("restored_collector")
def test_in_another_thread_it_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(tune_for_throughput()))
    thread.start()
    thread.join()
    assert results == [False]
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen_before


@pytest.mark.usefixtures("restored_collector")
def test_cycles_made_after_the_tuning_are_still_collected() -> None:
    tune_for_throughput()

    class Node:
        other: object

    first, second = Node(), Node()
    first.other, second.other = second, first
    watch = weakref.ref(first)
    del first, second
    assert watch() is not None  # a cycle: reference counting alone keeps it
    gc.collect()
    assert watch() is None


@pytest.mark.usefixtures("restored_collector")
def test_for_a_block_it_restores_the_collector_afterwards() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    with tuned_for_throughput() as tuned:
        assert tuned is True
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > frozen_before
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0

"""Partition ends are read again once a restarted broker is back.

librdkafka 2.16 answers a long-lived admin client's ListOffsets with
FENCED_LEADER_EPOCH after its broker restarted, request after request, until
the client's metadata of the topic is refreshed (see
tests/support/doubles/admin.py, a TEST DOUBLE of that behaviour).
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException

from hoststream.kafka import end_offsets
from tests.support.doubles.admin import RestartingBrokerAdmin

PARTITIONS = [("t", 0), ("t", 1)]


def test_the_ends_are_read_again_after_the_broker_restarted() -> None:
    admin = RestartingBrokerAdmin(ends={("t", 0): 7, ("t", 1): 3})
    assert end_offsets(admin, PARTITIONS) == {("t", 0): 7, ("t", 1): 3}  # type: ignore[arg-type]
    admin.stop()
    with pytest.raises(KafkaException):
        end_offsets(admin, PARTITIONS)  # type: ignore[arg-type]
    admin.start()
    admin.ends[("t", 0)] = 9
    assert end_offsets(admin, PARTITIONS) == {("t", 0): 9, ("t", 1): 3}  # type: ignore[arg-type]
    # And from then on at one request a call, as before the restart.
    before = admin.list_offsets_calls
    end_offsets(admin, PARTITIONS)  # type: ignore[arg-type]
    assert admin.list_offsets_calls == before + 1


def test_an_answered_request_asks_for_no_metadata() -> None:
    admin = RestartingBrokerAdmin(ends={("t", 0): 7})
    end_offsets(admin, [("t", 0)])  # type: ignore[arg-type]
    end_offsets(admin, [("t", 0)])  # type: ignore[arg-type]
    assert admin.metadata_requests == []

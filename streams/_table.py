"""A Faust table whose keys name their own changelog partition.

Faust writes a table change to the changelog partition of the event being
processed, which it finds through a context variable. That breaks twice here:
a batch from ``take_events`` mixes partitions, and the wall-clock timer runs
outside any event. So each key starts with its source partition
(``b"<partition>|..."``) and the table reads it from there: the state of a
metric partition always lands in the same changelog partition, and is
restored with it on the worker that gets that partition.
"""

from __future__ import annotations

from typing import Any

import faust

__all__ = ["SourcePartitionedTable", "partition_of", "state_key"]


def state_key(partition: int, family: str, host: str) -> bytes:
    return f"{partition}|{family}|{host}".encode()


def partition_of(key: bytes) -> int:
    return int(key.split(b"|", 1)[0])


class SourcePartitionedTable(faust.Table[bytes, bytes]):
    """A bytes table taking the changelog partition from the key (see the module docstring)."""

    def __init__(self, app: faust.types.AppT, **kwargs: Any) -> None:
        super().__init__(app, key_type=bytes, value_type=bytes, **kwargs)
        # Faust picks "json" for bytes; states are already canonical JSON bytes,
        # and raw keeps changelog records readable by any consumer.
        self.key_serializer = "raw"
        self.value_serializer = "raw"

    def partition_for_key(self, key: Any) -> int | None:
        return partition_of(bytes(key))

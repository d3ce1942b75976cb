"""A Faust table whose keys name their own changelog partition.

Faust writes a table change to the changelog partition of the event being
processed, which it finds through a context variable. That breaks twice here:
a batch from ``take_events`` mixes partitions, and the wall-clock timer runs
outside any event. So each key starts with its source partition
(``b"<partition>|..."``) and the table reads it from there: the state of a
metric partition always lands in the same changelog partition, and is
restored with it on the worker that gets that partition.

Given a :class:`ChangelogProducer` (the worker's librdkafka producer), the
table hands each change to it instead of Faust's producer, and skips Faust's
per-key sensors: a batch changes hundreds of keys, and Faust's path costs
tens of microseconds of Python each. The records are the same (raw key,
raw value, a tombstone for a delete, in the key's partition), so Faust's
recovery and standby replicas read them as they read their own.
"""

from __future__ import annotations

from typing import Any, Protocol

import faust

__all__ = ["ChangelogProducer", "SourcePartitionedTable", "partition_of", "state_key"]


def state_key(partition: int, family: str, host: str) -> bytes:
    return f"{partition}|{family}|{host}".encode()


def partition_of(key: bytes) -> int:
    return int(key.split(b"|", 1)[0])


class ChangelogProducer(Protocol):
    """Queues one changelog record (``value`` None: a tombstone) for a given partition."""

    def produce(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        *,
        partition: int | None = None,
    ) -> None: ...


class SourcePartitionedTable(faust.Table[bytes, bytes]):
    """A bytes table taking the changelog partition from the key (see the module docstring)."""

    def __init__(
        self, app: faust.types.AppT, *, producer: ChangelogProducer | None = None, **kwargs: Any
    ) -> None:
        """
        Args:
            app: the Faust application.
            producer: writes the changelog records; None: Faust's producer does.
            kwargs: as for ``faust.Table``.
        """
        super().__init__(app, key_type=bytes, value_type=bytes, **kwargs)
        # Faust picks "json" for bytes; states are already encoded bytes, and
        # raw keeps changelog records readable by any consumer.
        self.key_serializer = "raw"
        self.value_serializer = "raw"
        self._producer = producer
        self._changelog_name: str | None = None

    def partition_for_key(self, key: Any) -> int | None:
        return partition_of(bytes(key))

    def _write(self, key: bytes, value: bytes | None) -> None:
        assert self._producer is not None
        if self._changelog_name is None:
            self._changelog_name = self.changelog_topic.get_topic_name()
        self._producer.produce(self._changelog_name, key, value, partition=partition_of(key))

    def on_key_get(self, key: bytes) -> None:
        if self._producer is None:
            super().on_key_get(key)

    def on_key_set(self, key: bytes, value: bytes) -> None:
        if self._producer is None:
            super().on_key_set(key, value)
        else:
            self._write(key, value)

    def on_key_del(self, key: bytes) -> None:
        if self._producer is None:
            super().on_key_del(key)
        else:
            self._write(key, None)

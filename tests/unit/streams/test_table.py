"""The window table's changelog records go to the producer it is given (a recording double)."""

from __future__ import annotations

import faust

from hoststream.streams._table import SourcePartitionedTable


class RecordingProducer:
    """Stands in for the worker's librdkafka producer: keeps what it was given."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None, int | None]] = []

    def produce(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        *,
        partition: int | None = None,
    ) -> None:
        self.records.append((topic, key, value, partition))


def test_changes_are_written_to_the_changelog_partition_named_by_the_key() -> None:
    producer = RecordingProducer()
    app = faust.App("unit-table", broker="kafka://127.0.0.1:1", store="memory://")
    table = SourcePartitionedTable(app, name="windows", partitions=6, producer=producer)
    table[b"4|cpu|h1"] = b"header"
    table[b"4|cpu|h1\x1f60000"] = b"segment"
    table.pop(b"4|cpu|h1\x1f60000")
    assert table.get(b"4|cpu|h1") == b"header"
    assert b"4|cpu|h1\x1f60000" not in table
    assert producer.records == [
        ("unit-table-windows-changelog", b"4|cpu|h1", b"header", 4),
        ("unit-table-windows-changelog", b"4|cpu|h1\x1f60000", b"segment", 4),
        # A delete is a tombstone, so compaction drops the key.
        ("unit-table-windows-changelog", b"4|cpu|h1\x1f60000", None, 4),
    ]

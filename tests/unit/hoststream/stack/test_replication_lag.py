"""How replication lag is judged from what each cluster holds.

The clusters are in-memory doubles (dictionaries standing in for the answers of
the two Kafka clusters); the integration test of two regions reads real ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hoststream.stack import mirrormaker

SOURCE, TARGET = "127.0.0.1:1", "127.0.0.1:2"
TOPIC = "metrics.agg.1m"
COPY = f"region-a.{TOPIC}"


def _clusters(
    monkeypatch: pytest.MonkeyPatch,
    held: dict[str, dict[tuple[str, int], int]],
    last: dict[str, dict[tuple[str, int], tuple[int, bytes, bytes]]],
) -> None:
    def partition_records(
        bootstrap: str, topics: Sequence[str] | None
    ) -> dict[tuple[str, int], int]:
        return {key: n for key, n in held[bootstrap].items() if topics is None or key[0] in topics}

    def last_records(
        bootstrap: str, topics: Sequence[str]
    ) -> dict[tuple[str, int], tuple[int, bytes, bytes]]:
        return {key: r for key, r in last[bootstrap].items() if key[0] in topics}

    monkeypatch.setattr(mirrormaker, "_partition_records", partition_records)
    monkeypatch.setattr(mirrormaker, "_last_records", last_records)


def _lag(monkeypatch: pytest.MonkeyPatch, copied: int, copy_ends_with: bytes) -> int | None:
    _clusters(
        monkeypatch,
        {SOURCE: {(TOPIC, 0): 10}, TARGET: {(COPY, 0): copied}},
        {
            SOURCE: {(TOPIC, 0): (1_000, b"h1", b"window-10")},
            TARGET: {
                (COPY, 0): (1_000 if copy_ends_with == b"window-10" else 900, b"h1", copy_ends_with)
            },
        },
    )
    return mirrormaker.replication_lag("region-a", SOURCE, "region-b", TARGET).messages


def test_a_copy_ending_with_the_sources_last_record_and_as_many_records_has_no_lag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _lag(monkeypatch, copied=10, copy_ends_with=b"window-10") == 0


def test_duplicates_in_the_copy_do_not_hide_missing_newest_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Twelve copies (records 1-4 copied twice after a restart), the newest two missing.
    assert _lag(monkeypatch, copied=12, copy_ends_with=b"window-8") == 1


def test_fewer_copies_count_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _lag(monkeypatch, copied=7, copy_ends_with=b"window-7") == 3


def test_an_empty_copy_lacks_every_record_and_topics_mirrored_from_the_target_are_not_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clusters(
        monkeypatch,
        {SOURCE: {(TOPIC, 0): 4, (TOPIC, 1): 2, ("region-b.alerts", 0): 5}, TARGET: {}},
        {SOURCE: {(TOPIC, 0): (1, b"k", b"v"), (TOPIC, 1): (1, b"k", b"w")}, TARGET: {}},
    )
    assert mirrormaker.replication_lag("region-a", SOURCE, "region-b", TARGET).messages == 6


def test_a_cluster_that_does_not_answer_gives_no_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirrormaker, "_partition_records", lambda bootstrap, topics: None)
    assert mirrormaker.replication_lag("region-a", SOURCE, "region-b", TARGET).messages is None

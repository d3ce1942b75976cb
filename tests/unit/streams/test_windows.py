"""Window sizes: names, alignment, and the rule that larger windows roll up from the smallest."""

from __future__ import annotations

import pytest

from hoststream.errors import ConfigurationError
from hoststream.streams.windows import WindowSize, parse_windows


@pytest.mark.parametrize(
    ("text", "ms", "label"),
    [("10s", 10_000, "10s"), ("1m", 60_000, "1m"), ("300s", 300_000, "5m"), ("90", 90_000, "90s"),
     ("1h", 3_600_000, "1h"), ("1500ms", 1_500, "1500ms")],
)  # fmt: skip
def test_parse_and_label(text: str, ms: int, label: str) -> None:
    size = WindowSize.parse(text)
    assert size.ms == ms
    assert size.label == label


def test_start_of_floors_also_before_the_epoch() -> None:
    minute = WindowSize(60_000)
    assert minute.start_of(119_999) == 60_000
    assert minute.start_of(-1) == -60_000


def test_parse_windows_sorts_and_deduplicates() -> None:
    assert parse_windows(["5m", "1m", "60s"]) == (WindowSize(60_000), WindowSize(300_000))


@pytest.mark.parametrize(
    ("specs", "message"),
    [(["1m", "90s"], "not a multiple"), (["soon"], "not a window size"), ([], "at least one")],
)
def test_parse_windows_refuses(specs: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        parse_windows(specs, "--windows")
    assert info.value.setting == "--windows"

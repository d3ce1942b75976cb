"""The pipeline benchmark reads the producer's last line: it must keep up with its wording."""

from __future__ import annotations

from bench.pipeline import _REPORT
from hoststream.producers.agent import ProducerReport


def test_the_benchmark_parses_the_line_the_producer_ends_with_even_wrapped() -> None:
    report = ProducerReport(
        ticks=15,
        skipped_ticks=1,
        events=57_200,
        samples=2_205_616,
        acknowledged=57_100,
        acknowledged_samples=2_201_000,
        failed=100,
        dropped=3,
        elapsed_seconds=150.2,
    )
    wrapped = (
        report.summary()
        .replace(" events/s", "\nevents/s")
        .replace(" unacknowledged", "\n unacknowledged")
    )
    match = _REPORT.search(" ".join(wrapped.split()))
    assert match is not None, report.summary()
    assert match.groups() == ("57200", "2205616", "57100", "150.2", "3", "15", "1")

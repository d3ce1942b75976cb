"""Tracing set up with in-memory exporters, so tests read back exactly what would be exported.

A pytest plugin. Modules that set tracing up mark themselves with
``pytestmark = pytest.mark.usefixtures("no_otlp_environment")``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hoststream.config import Settings
from hoststream.tracing import configure_tracing, shutdown_tracing


@pytest.fixture
def no_otlp_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTLP endpoint from the environment; tracing shut down after the test."""
    # A developer's shell (or stack.env) may point at a real collector.
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SDK_DISABLED",
        "HOSTSTREAM_OTLP_ENDPOINT",
        "HOSTSTREAM_OTLP_LOGS_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    shutdown_tracing()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Tracing on for component ``producer`` of host ``h1``; the exporter holds the spans."""
    exporter = InMemorySpanExporter()
    configure_tracing(Settings(host_id="h1"), "producer", span_exporter=exporter, set_global=False)
    return exporter


@pytest.fixture
def log_records() -> InMemoryLogRecordExporter:
    """Tracing and OTLP log export on; the exporter holds the log records."""
    exporter = InMemoryLogRecordExporter()
    configure_tracing(
        Settings(host_id="h1"),
        "stream",
        span_exporter=InMemorySpanExporter(),
        log_exporter=exporter,
        set_global=False,
    )
    return exporter

"""A span per API request, through OpenTelemetry's FastAPI instrumentation.

:func:`instrument` is called by :func:`api.app.create_app`. With tracing on
(:func:`hoststream.tracing.configure_tracing` found an endpoint) every request
is a SERVER span named after its route template (``GET /api/v1/hosts``), the
child of the caller's span when the request carries a ``traceparent``; lines
logged while the request is handled carry its ids. With tracing off the
instrumentation is not even imported, so requests cost what they did before.
"""

from __future__ import annotations

from fastapi import FastAPI

from hoststream.tracing import tracer_provider

__all__ = ["UNTRACED_URLS", "instrument"]

#: Requests that get no span: Prometheus scrapes ``/metrics`` every few
#: seconds, and a trace per scrape would bury the requests worth looking at.
#: Regular expressions searched in the request's URL, as the instrumentation takes them.
UNTRACED_URLS = ("/metrics$",)


def instrument(app: FastAPI) -> bool:
    """Trace ``app``'s requests if tracing is on; return whether it did."""
    provider = tracer_provider()
    if provider is None:
        return False
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=",".join(UNTRACED_URLS),
        # One span per request, not one more per chunk sent or received (the
        # server-sent event stream would otherwise make one per event).
        exclude_spans=["receive", "send"],
    )
    return True

"""Consumer groups that store samples, aggregates and alerts, and route alerts."""

__all__: list[str] = []

"""Faust stream processors: windowed aggregates and alert events."""

__all__: list[str] = []

"""The aggregate query API (FastAPI)."""

__all__: list[str] = []

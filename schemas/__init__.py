"""The Avro schemas (``*.avsc``) and their codecs."""

__all__: list[str] = []

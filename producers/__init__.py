"""The agent that runs on every host: psutil collectors emitting Avro metric events to Kafka."""

__all__: list[str] = []

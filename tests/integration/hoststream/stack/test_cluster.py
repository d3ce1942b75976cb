"""The three-broker KRaft cluster keeps a replicated topic available when a broker stops."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from hoststream.kafka import admin_client, consumer_config, producer_config


def test_rf3_topic_survives_one_broker_down(kafka_cluster, make_topic, unique: str) -> None:
    settings = kafka_cluster.settings
    topic = make_topic(partitions=3, settings=settings)
    metadata = admin_client(settings).list_topics(topic, timeout=10)
    assert len(metadata.brokers) == 3
    for partition in metadata.topics[topic].partitions.values():
        assert len(partition.replicas) == 3

    producer = Producer(producer_config(settings))
    for i in range(30):
        producer.produce(topic, key=f"h{i % 5}".encode(), value=f"before-{i}".encode())
    assert producer.flush(20) == 0

    [victim] = [s for s in kafka_cluster.stack.services() if s.name == "kafka-2"]
    assert victim.stop()
    try:
        # acks=all with min.insync.replicas=2: two live replicas still accept writes.
        failures: list[str] = []

        def on_delivery(err, _msg) -> None:
            if err is not None:
                failures.append(str(err))

        for i in range(30):
            producer.produce(
                topic,
                key=f"h{i % 5}".encode(),
                value=f"after-{i}".encode(),
                on_delivery=on_delivery,
            )
        assert producer.flush(60) == 0
        assert failures == []

        consumer = Consumer(consumer_config(settings, unique))
        consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
        values: set[bytes] = set()
        deadline = time.monotonic() + 60
        while len(values) < 60 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.add(message.value())
        consumer.close()
        expected = {f"before-{i}".encode() for i in range(30)} | {
            f"after-{i}".encode() for i in range(30)
        }
        assert values == expected
    finally:
        victim.start()

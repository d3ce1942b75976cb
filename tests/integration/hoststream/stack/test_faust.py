"""Faust (faust-streaming, on aiokafka) works against the stack's Kafka broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from hoststream.kafka import consumer_config, producer_config

APP = Path(__file__).with_name("faust_echo.py")


def test_faust_agent_consumes_and_produces(services, make_topic, unique: str, tmp_path) -> None:
    source, sink = make_topic("in"), make_topic("out")
    env = {
        **os.environ,
        "ECHO_APP_ID": unique,
        "ECHO_BOOTSTRAP": services.kafka_bootstrap.split(",")[0],
        "ECHO_IN": source,
        "ECHO_OUT": sink,
    }
    log = (tmp_path / "faust.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, str(APP), "worker", "-l", "warn", "--without-web"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        producer = Producer(producer_config(services))
        for i in range(3):
            producer.produce(source, key=f"h{i}".encode(), value=f"sample-{i}".encode())
        assert producer.flush(10) == 0

        # Not the app id: Faust uses that as its own consumer group.
        consumer = Consumer(consumer_config(services, f"{unique}-reader"))
        consumer.subscribe([sink])
        received: dict[bytes, bytes] = {}
        deadline = time.monotonic() + 90
        while len(received) < 3 and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "faust.log").read_text()[-2000:]
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                received[message.key()] = message.value()
        consumer.close()
        assert received == {f"h{i}".encode(): f"SAMPLE-{i}".encode() for i in range(3)}
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()

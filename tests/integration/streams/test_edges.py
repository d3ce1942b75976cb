"""The worker's edges against the real broker: a quiet host, undecodable input, huge values."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from hoststream.kafka import producer_config
from hoststream.schemas import MetricEvent, Sample, WindowAggregate
from hoststream.streams.aggregator import WindowAggregator
from hoststream.streams.app import build_app
from hoststream.streams.metrics import StreamMetrics
from hoststream.streams.windows import DEFAULT_WINDOWS
from hoststream.topics import dead_letter_topic, metric_topic
from tests.support.kafka import drain
from tests.support.streams import MIN, key_of, produce, read_aggregates


def _one_second_minutes(
    host: str, value_of: Callable[[int], float], now: int
) -> tuple[list[MetricEvent], list[WindowAggregate]]:
    """90 one-second events of ``host`` from three minutes ago, the i-th of value
    ``value_of(i)``, and every window they make, event time and then the wall
    clock (at ``now`` + 1 min) closing them: every window is past end + grace."""
    t0 = now - now % MIN - 3 * MIN
    events = [
        MetricEvent(host, "system", t0 + i * 1000, (Sample("node_load1", value_of(i)),), 1000, i)
        for i in range(90)
    ]
    aggregator = WindowAggregator(
        DEFAULT_WINDOWS, grace_ms=2000, metrics=StreamMetrics(CollectorRegistry())
    )
    state = aggregator.new_state(host, "system")
    want: list[WindowAggregate] = []
    for event in events:
        want += aggregator.add(state, event).aggregates
    want += aggregator.close_on_wall_clock(state, now + 60_000)
    return events, want


def test_quiet_host_gets_its_last_windows_on_wall_clock(stream_settings, start_worker) -> None:
    now = time.time_ns() // 1_000_000
    # One-second collection interval: the host counts as quiet after 2 s without events.
    events, want = _one_second_minutes("quiet-1", lambda i: i / 4, now)
    produce(stream_settings, events)
    # Event time closes only the first minute; the rest needs the wall clock.
    assert len(want) > 1
    assert sum(a.window_size_ms == MIN for a in want) == 2

    worker = start_worker("--grace", "2", "--no-alerts", "--session-timeout", "10")
    records = read_aggregates(stream_settings, DEFAULT_WINDOWS, len(want), [worker], timeout_s=90)
    assert {key_of(a): a for _, _, a in records} == {key_of(a): a for a in want}, worker.tail()


def test_undecodable_message_goes_to_the_dead_letter_topic(stream_settings, start_worker) -> None:
    # A valid event first (the validation contract refuses stale timestamps), then garbage.
    now = time.time_ns() // 1_000_000
    produce(stream_settings, [MetricEvent("h1", "system", now, (Sample("node_load1", 1.0),))])
    topic = metric_topic(stream_settings, "system")
    producer = Producer(producer_config(stream_settings))
    producer.produce(topic, key=b"h1", value=b"not avro", headers=[("origin", b"test")])
    assert producer.flush(10) == 0

    worker = start_worker("--no-alerts", "--session-timeout", "10")
    (letter,) = drain(stream_settings, [dead_letter_topic(topic)], expected=1, timeout_s=90)
    assert worker.alive(), worker.tail()
    headers = dict(letter.headers())
    assert letter.value() == b"not avro"
    assert letter.key() == b"h1"
    assert headers["origin"] == b"test"
    assert headers["hoststream.dlq.error.class"] == b"SerializationError"
    assert headers["hoststream.dlq.source.topic"] == topic.encode()
    assert int(headers["hoststream.dlq.source.offset"]) == 1


def test_a_window_whose_sum_leaves_the_float_range_is_emitted_and_the_worker_goes_on(
    stream_settings, start_worker
) -> None:
    # math.fsum raised OverflowError on such a window: the worker stopped there,
    # and again after every restart. Now its sum and mean are infinite.
    now = time.time_ns() // 1_000_000
    events, want = _one_second_minutes("huge-1", lambda i: 1e308, now)
    produce(stream_settings, events)
    assert any(a.sum == float("inf") for a in want)

    worker = start_worker("--grace", "2", "--no-alerts", "--session-timeout", "10")
    records = read_aggregates(stream_settings, DEFAULT_WINDOWS, len(want), [worker], timeout_s=90)
    assert {key_of(a): a for _, _, a in records} == {key_of(a): a for a in want}, worker.tail()
    assert worker.alive(), worker.tail()


def test_the_worker_commits_as_often_as_configured(stream_settings, tmp_path) -> None:
    settings = stream_settings.model_copy(update={"stream_commit_interval_s": 0.5})
    app = build_app(settings, datadir=tmp_path / "faust")
    assert app.app.conf.broker_commit_interval == 0.5


def test_a_batch_is_processed_once_delivery_pauses_not_after_batch_within(
    stream_settings, start_worker
) -> None:
    # Two messages and then nothing: the batch holding them closes once
    # delivery pauses. Held for --batch-within (60 s) from the wait's start, as
    # Faust's take_events did, the dead letter would come a minute after start.
    now = time.time_ns() // 1_000_000
    produce(stream_settings, [MetricEvent("h1", "system", now, (Sample("node_load1", 1.0),))])
    topic = metric_topic(stream_settings, "system")
    producer = Producer(producer_config(stream_settings))
    producer.produce(topic, key=b"h1", value=b"not avro")
    assert producer.flush(10) == 0

    worker = start_worker("--no-alerts", "--session-timeout", "10", "--batch-within", "60")
    (letter,) = drain(stream_settings, [dead_letter_topic(topic)], expected=1, timeout_s=40)
    assert letter.value() == b"not avro"
    assert worker.alive(), worker.tail()

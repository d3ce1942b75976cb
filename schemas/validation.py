"""The validation contract: what a record must be to enter, or leave, any hop.

One set of rules, applied identically by the producer (a bad sample is
counted, logged and never sent), the stream processor and every sink (a bad
record goes to ``<topic>.dlq`` with the rule it broke). Every rule is listed
in docs/validation.md; every limit is a setting (:class:`ValidationLimits`).

Start with :class:`Validator`: ``validator.check(record, topic, now_ms)``
returns None for a valid record and a :class:`Violation` (the rule broken and
a sentence) otherwise; :meth:`Validator.check_batch` does a whole batch at
one clock reading, and :meth:`Validator.check_columns` an event decoded
into columns (names and labels judged once per layout, values as one vector).
Nothing here raises for bad input: a rejection is a value,
so a fuzzer or a columnar caller can count on it.

The rules, for every record kind:

- host id: 1 to ``max_host_id_length`` characters, letters, digits and
  ``. _ : -``, starting with a letter or digit (a DNS name, an IPv4 or IPv6
  address); the API looks hosts up by the same pattern.
- metric names: Prometheus' ``[a-zA-Z_:][a-zA-Z0-9_:]*``, at most
  ``max_metric_name_length``.
- label names: Prometheus' ``[a-zA-Z_][a-zA-Z0-9_]*``, not starting with
  ``__`` (reserved), not ``instance`` or ``job`` (set from the host id by the
  VictoriaMetrics sink), at most ``max_label_name_length``.
- label values: at most ``max_label_value_length`` characters, no control
  characters (PostgreSQL's TEXT cannot hold NUL; the others are collector bugs).
- labels per series: the stored series (``__name__``, ``instance``, ``job``,
  the host labels and the sample's labels) has at most ``max_labels_per_series``
  labels: VictoriaMetrics' ``-maxLabelsPerTimeseries`` (default 30) drops the
  rest silently.
- values: finite; a counter's value (and an aggregate's counter rate) is not
  negative.
- timestamps: within ``[now - max_age_s, now + max_future_s]`` of the
  consumer's clock.
- topic: an event's family is its topic's (``metrics.<family>``), an
  aggregate's window its topic's (``metrics.agg.<window>``), an alert on
  ``alerts``.
- no series twice in one event; an aggregate's window is
  ``[start, start + size)`` with ``start`` a multiple of ``size`` and a count
  of at least one.
"""

from __future__ import annotations

import math
import re
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from hoststream.schemas.records import AlertEvent, MetricEvent, MetricKind, Sample, WindowAggregate
from hoststream.schemas.statistics import STATISTICS
from hoststream.topics import mirror_source

if TYPE_CHECKING:
    from hoststream.config import Settings

__all__ = [
    "RESERVED_LABELS",
    "SERIES_LABELS",
    "Record",
    "ShapedAggregate",
    "ShapedEvent",
    "ValidationLimits",
    "Validator",
    "Violation",
]


@runtime_checkable
class ShapedEvent(Protocol):
    """A metric event read by its byte layout, without an object per sample.

    ``shape`` (weakly referenceable) identifies the layout: events of one
    shape share host, family, host labels and series, and differ in instant
    and values.
    """

    @property
    def shape(self) -> Any: ...

    @property
    def values(self) -> tuple[float, ...]: ...

    @property
    def timestamp_ms(self) -> int: ...

    def finite(self) -> bool:
        """Whether every value is finite (a reader that judged them in bulk knows it)."""
        ...

    def event(self) -> MetricEvent:
        """The whole event, samples included."""
        ...

    def header(self) -> MetricEvent:
        """The event without its samples: host, family, instant, host labels."""
        ...


@runtime_checkable
class ShapedAggregate(Protocol):
    """A window aggregate read by its series' layout, without an object per record.

    ``shape`` (weakly referenceable) identifies the series: aggregates of one
    shape share host, metric, labels, kind, window size and region, and
    differ in their window and statistics.
    """

    @property
    def shape(self) -> Any: ...

    @property
    def host(self) -> str: ...

    @property
    def metric(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def kind(self) -> MetricKind: ...

    @property
    def window_size_ms(self) -> int: ...

    @property
    def window_start(self) -> int: ...

    @property
    def window_end(self) -> int: ...

    @property
    def sample_count(self) -> int:
        """The aggregate's ``count``."""
        ...

    @property
    def min(self) -> float: ...

    @property
    def quantile_relative_error(self) -> float: ...

    @property
    def rate_per_second(self) -> float | None: ...

    @property
    def stats(self) -> tuple[float, ...]:
        """Every float statistic of the window, the quantile error included."""
        ...

    def aggregate(self) -> WindowAggregate:
        """The whole record."""
        ...


Record = MetricEvent | WindowAggregate | AlertEvent

#: Labels the VictoriaMetrics sink sets on every series itself.
RESERVED_LABELS = frozenset({"instance", "job"})
#: Labels every stored series has besides its own: ``__name__``, ``instance``, ``job``.
SERIES_LABELS = 3


def _routing_labels(alert: AlertEvent) -> Mapping[str, str]:
    """An alert's Alertmanager labels, less the ``instance`` the rule engine sets to its host.

    They name no stored series: ``instance=<host>`` is how Alertmanager and
    its routes see which host an alert is about, so the reserved-label rule
    of series does not apply to it.
    """
    if alert.labels.get("instance") != alert.host:
        return alert.labels
    return {k: v for k, v in alert.labels.items() if k != "instance"}


_HOST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FAMILY = re.compile(r"[a-z][a-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WINDOW_LABEL = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

# Names and label pairs seen valid are remembered, so a steady stream of
# the same series costs a set lookup per label; bounded, then forgotten.
_CACHE_LIMIT = 200_000
# Judged layouts of the columnar path: the stream decoder learns one per host
# and family, so a fleet of 2,000 hosts has 10,000; a smaller bound would
# forget them all again and again and judge every event's layout anew.
_LAYOUT_CACHE_LIMIT = 100_000
#: Topics whose window size is remembered (a consumer reads a few).
_MAX_TOPICS = 1000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """The contract's limits; each is a setting ``HOSTSTREAM_VALIDATION_<NAME>``.

    Args:
        max_host_id_length: characters of a host id (253: the longest DNS name).
        max_metric_name_length: characters of a metric name.
        max_label_name_length: characters of a label name.
        max_label_value_length: characters of a label value (VictoriaMetrics
            truncates past ``-maxLabelValueLen``, 16384, silently).
        max_labels_per_series: labels of a stored series, counting ``__name__``,
            ``instance`` and ``job`` (VictoriaMetrics' ``-maxLabelsPerTimeseries``).
        max_age_s: how far behind the consumer's clock a timestamp may be; keep
            it within the stores' retention (VictoriaMetrics' ``-retentionPeriod``).
        max_future_s: how far ahead of the consumer's clock a timestamp may be.
    """

    max_host_id_length: int = 253
    max_metric_name_length: int = 200
    max_label_name_length: int = 100
    max_label_value_length: int = 1024
    max_labels_per_series: int = 30
    max_age_s: float = 7 * 86_400.0
    max_future_s: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ValidationLimits:
        return cls(
            max_host_id_length=settings.validation_max_host_id_length,
            max_metric_name_length=settings.validation_max_metric_name_length,
            max_label_name_length=settings.validation_max_label_name_length,
            max_label_value_length=settings.validation_max_label_value_length,
            max_labels_per_series=settings.validation_max_labels_per_series,
            max_age_s=settings.validation_max_age_s,
            max_future_s=settings.validation_max_future_s,
        )


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken rule: ``error`` names it (the dead-letter error class), ``reason`` explains."""

    error: str
    reason: str


def _unknown_record(record: object, topic: str | None, now: int) -> Violation:
    return Violation("UnknownRecord", f"a {type(record).__name__} is no hoststream record")


def _cut(text: str, limit: int = 80) -> str:
    """``text`` quoted for a reason, shortened: a 10 kB value must not make a 10 kB header."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


class Validator:
    """Checks records against the contract.

    Args:
        limits: the contract's limits.
        topic_prefix: ``HOSTSTREAM_TOPIC_PREFIX``, to tell a record's topic.
        clock_ms: the consumer's clock, UTC milliseconds; used when a check is
            not given ``now_ms``.
    """

    def __init__(
        self,
        limits: ValidationLimits | None = None,
        *,
        topic_prefix: str = "",
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.limits = limits if limits is not None else ValidationLimits()
        self._prefix = topic_prefix
        self._clock_ms = clock_ms if clock_ms is not None else _wall_clock_ms
        self._max_age_ms = int(self.limits.max_age_s * 1000)
        self._max_future_ms = int(self.limits.max_future_s * 1000)
        self._good_names: set[str] = set()
        self._good_hosts: set[str] = set()
        self._good_labels: set[tuple[str, str]] = set()
        self._layouts: dict[Hashable, tuple[Violation | None, Any]] = {}
        # Shapes whose events passed in full -> the topics they passed on.
        self._good_shapes = _ShapeTopics()
        # Topic -> the window size its aggregates have (a consumer reads a few topics).
        self._topic_windows: dict[str, int | None] = {}
        # The check for each type of record met; a protocol's isinstance is slow.
        self._checks: dict[type, Callable[[Any, str | None, int], Violation | None]] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock_ms: Callable[[], int] | None = None
    ) -> Validator:
        return cls(
            ValidationLimits.from_settings(settings),
            topic_prefix=settings.topic_prefix,
            clock_ms=clock_ms,
        )

    def now_ms(self) -> int:
        """The consumer's clock, UTC milliseconds: read it once to judge a batch."""
        return self._clock_ms()

    # -- whole records ------------------------------------------------------

    def check(
        self, record: object, topic: str | None = None, now_ms: int | None = None
    ) -> Violation | None:
        """The first rule ``record`` breaks, or None.

        Args:
            record: a decoded :class:`MetricEvent`, :class:`WindowAggregate` or
                :class:`AlertEvent`; anything else is a violation.
            topic: the topic it was read from (None: not checked).
            now_ms: the consumer's clock (None: read it now).
        """
        now = self._clock_ms() if now_ms is None else now_ms
        check = self._checks.get(type(record))
        if check is None:
            check = self._checks[type(record)] = self._check_for(record)
        return check(record, topic, now)

    def _check_for(self, record: object) -> Callable[[Any, str | None, int], Violation | None]:
        if isinstance(record, MetricEvent):
            return self.check_event
        if isinstance(record, WindowAggregate):
            return self.check_aggregate
        if isinstance(record, AlertEvent):
            return self.check_alert
        if isinstance(record, ShapedEvent):
            return self.check_shaped_event
        if isinstance(record, ShapedAggregate):
            return self.check_shaped_aggregate
        return _unknown_record

    def check_shaped_event(
        self, record: ShapedEvent, topic: str | None = None, now_ms: int | None = None
    ) -> Violation | None:
        """:meth:`check_event` for an event read by a layout: in full once per layout.

        Once an event of a layout passed, its names and labels are known good;
        later events of it are checked for their instant, host and topic, and
        in full only when one of their values is not finite.
        """
        now = self._clock_ms() if now_ms is None else now_ms
        topics = self._good_shapes.get(record.shape)
        if topics is None or not record.finite():
            found = self.check_event(record.event(), topic, now)
            if found is None:
                self._good_shapes.add(record.shape, topic)
            return found
        # Host, family and host labels are the shape's, judged with its first
        # event: on a topic it passed on, only the instant is left to judge.
        if topic in topics and self._timestamp(record.timestamp_ms, "timestamp_ms", now) is None:
            return None
        found = self.check_event_fields(record.header(), topic, now)
        if found is None:
            topics.add(topic)
        return found

    def check_shaped_aggregate(
        self, record: ShapedAggregate, topic: str | None = None, now_ms: int | None = None
    ) -> Violation | None:
        """:meth:`check_aggregate` for an aggregate read by its series' layout.

        Once an aggregate of a series passed on a topic, the series' names,
        labels and window size are known good there; later ones are checked
        for what varies (window, count, statistics, instant), and in full,
        for the precise violation, only when one of those rules is broken.
        The first aggregate of a series is checked by the same rules, its
        series' fields once: only one that breaks a rule is made into a whole
        record and checked in full.
        """
        now = self._clock_ms() if now_ms is None else now_ms
        topics = self._good_shapes.get(record.shape)
        if self._window_passes(record, now):
            if topics is not None and topic in topics:
                return None
            if self._series_passes(record, topic):
                self._good_shapes.add(record.shape, topic)
                return None
        found = self.check_aggregate(record.aggregate(), topic, now)
        if found is None:
            self._good_shapes.add(record.shape, topic)
        return found

    def _series_passes(self, a: ShapedAggregate, topic: str | None) -> bool:
        """Whether the fields a series' aggregates share break none of the rules.

        (A window size that is not positive fails :meth:`_window_passes`.)
        """
        size = a.window_size_ms
        # Only whether a rule is broken counts here (the full check names it),
        # so the labels' context is the bare metric name.
        return (
            (topic is None or size == self._window_of(topic))
            and self._host(a.host) is None
            and self._metric_name(a.metric) is None
            and self._labels(a.labels, a.metric) is None
            and self._label_count(len(a.labels), a.metric) is None
        )

    def _window_passes(self, a: ShapedAggregate, now: int) -> bool:
        """Whether what varies between a series' aggregates breaks none of the rules."""
        size, start, end, rate = a.window_size_ms, a.window_start, a.window_end, a.rate_per_second
        return (
            size > 0
            and end == start + size
            and not start % size
            and a.sample_count >= 1
            and now - self._max_age_ms <= end <= now + self._max_future_ms
            # One sum finds a NaN or infinity among all the statistics.
            and math.isfinite(sum(a.stats))
            and 0 <= a.quantile_relative_error < 1
            and (rate is None or (math.isfinite(rate) and rate >= 0))
            and (a.kind is not MetricKind.COUNTER or a.min >= 0)
        )

    def check_batch(
        self, records: Sequence[object], topics: Sequence[str | None] | str | None = None
    ) -> list[Violation | None]:
        """:meth:`check` for each record, at one reading of the clock.

        Args:
            records: decoded records.
            topics: each record's topic, or one topic for all, or None.
        """
        now = self._clock_ms()
        if topics is None or isinstance(topics, str):
            return [self.check(record, topics, now) for record in records]
        if len(topics) != len(records):
            raise ValueError(f"{len(records)} records but {len(topics)} topics")
        return [self.check(r, t, now) for r, t in zip(records, topics, strict=True)]

    def check_event(
        self, event: MetricEvent, topic: str | None = None, now_ms: int | None = None
    ) -> Violation | None:
        found = self.check_event_fields(event, topic, now_ms)
        if found is not None:
            return found
        bad = self._scan_samples(event, first_only=True)
        return bad[0][1] if bad else None

    def check_event_fields(
        self, event: MetricEvent, topic: str | None = None, now_ms: int | None = None
    ) -> Violation | None:
        """The rules of an event as a whole: topic, host id, timestamp, host labels."""
        now = self._clock_ms() if now_ms is None else now_ms
        if topic is not None:
            expected = self._family_of(topic)
            if event.family != expected:
                carries = f"{expected!r} events" if expected is not None else "no events"
                return Violation(
                    "WrongTopic",
                    f"a {_cut(event.family)} event on topic {topic!r}, which carries {carries}",
                )
        elif not _FAMILY.fullmatch(event.family):
            return Violation("InvalidFamily", f"family {_cut(event.family)} is not a family name")
        found = self._host(event.host)
        if found is not None:
            return found
        found = self._timestamp(event.timestamp_ms, "timestamp_ms", now)
        if found is not None:
            return Violation(found.error, f"{found.reason}; check the clock of host {event.host!r}")
        return self._labels(event.host_labels, "host_labels")

    def check_aggregate(
        self, aggregate: WindowAggregate, topic: str | None = None, now_ms: int | None = None
    ) -> Violation | None:
        now = self._clock_ms() if now_ms is None else now_ms
        a = aggregate
        if topic is not None:
            expected = self._window_of(topic)
            if a.window_size_ms != expected:
                return Violation(
                    "WrongTopic",
                    f"a window of {a.window_size_ms} ms on topic {topic!r}, which carries"
                    + (f" windows of {expected} ms" if expected is not None else " no aggregates"),
                )
        if (
            a.window_size_ms <= 0
            or a.window_end != a.window_start + a.window_size_ms
            or a.window_start % a.window_size_ms
        ):
            return Violation(
                "InvalidWindow",
                f"window [{a.window_start}, {a.window_end}) is not an aligned window of"
                f" window_size_ms={a.window_size_ms}",
            )
        if a.count < 1:
            return Violation("InvalidWindow", f"count is {a.count}; a window holds a sample")
        found = (
            self._host(a.host)
            or self._metric_name(a.metric)
            or self._labels(a.labels, f"the labels of {a.metric}")
            or self._label_count(len(a.labels), a.metric)
            or self._timestamp(a.window_end, "window_end", now)
        )
        if found is not None:
            return found
        # The float statistics; the count is checked above, the optional rate below.
        for stat in STATISTICS:
            if stat.integer or stat.optional:
                continue
            name, value = stat.field, getattr(a, stat.field)
            if not math.isfinite(value):
                return Violation("NonFiniteValue", f"{name} of {a.metric} is {value}")
        error = a.quantile_relative_error
        if not (math.isfinite(error) and 0 <= error < 1):
            return Violation("NonFiniteValue", f"quantile_relative_error is {error}")
        if a.rate_per_second is not None:
            if not math.isfinite(a.rate_per_second):
                return Violation(
                    "NonFiniteValue", f"rate_per_second of {a.metric} is {a.rate_per_second}"
                )
            if a.rate_per_second < 0:
                return Violation(
                    "NegativeCounter",
                    f"rate_per_second of {a.metric} is {a.rate_per_second}; counter rates"
                    " are not negative (resets are taken into account)",
                )
        if a.kind is MetricKind.COUNTER and a.min < 0:
            return Violation(
                "NegativeCounter", f"counter {a.metric} has min {a.min}; counters are not negative"
            )
        return None

    def check_alert(
        self, alert: AlertEvent, topic: str | None = None, now_ms: int | None = None
    ) -> Violation | None:
        now = self._clock_ms() if now_ms is None else now_ms
        e = alert
        if topic is not None and self._unmirrored(topic) != f"{self._prefix}alerts":
            return Violation("WrongTopic", f"an alert event on topic {topic!r}")
        if not e.dedup_key or len(e.dedup_key) > 1024 or _CONTROL.search(e.dedup_key):
            return Violation(
                "InvalidAlert", f"dedup_key {_cut(e.dedup_key)} is empty, too long or not text"
            )
        for name in ("rule", "severity"):
            text = getattr(e, name)
            if not text or len(text) > self.limits.max_label_value_length or _CONTROL.search(text):
                return Violation(
                    "InvalidAlert", f"{name} {_cut(text)} is empty, too long or not text"
                )
        found = (
            self._host(e.host)
            or self._metric_name(e.metric)
            or self._labels(e.series_labels, "series_labels")
            or self._labels(_routing_labels(e), "labels")
            or self._annotations(e.annotations)
        )
        if found is not None:
            return found
        for name in ("starts_at", "window_end", "event_time"):
            found = self._timestamp(getattr(e, name), name, now)
            if found is not None:
                return found
        if e.ends_at is not None:
            found = self._timestamp(e.ends_at, "ends_at", now)
            if found is not None:
                return found
        for name in ("value", "threshold"):
            value = getattr(e, name)
            if not math.isfinite(value):
                return Violation("NonFiniteValue", f"{name} of alert {e.rule} is {value}")
        return None

    # -- parts ----------------------------------------------------------------

    def check_sample(
        self, sample: Sample, host_label_names: Iterable[str] = ()
    ) -> Violation | None:
        """The first rule one sample breaks, or None; ``host_label_names`` join its series."""
        found = self._metric_name(sample.name) or self._labels(
            sample.labels, f"the labels of {sample.name}"
        )
        if found is not None:
            return found
        names = set(sample.labels)
        names.update(host_label_names)
        found = self._label_count(len(names), sample.name)
        if found is not None:
            return found
        value = sample.value
        # isinstance: a value decoded from Avro is a float; one built in code may be anything.
        if not isinstance(value, int | float) or not math.isfinite(value):
            return Violation("NonFiniteValue", f"the value of {sample.name} is {value!r}")
        if value < 0 and sample.kind is MetricKind.COUNTER:
            return Violation(
                "NegativeCounter", f"counter {sample.name} is {value}; counters are not negative"
            )
        return None

    def check_columns(
        self,
        *,
        host: str,
        family: str,
        timestamp_ms: int,
        series: Sequence[tuple[tuple[str, Iterable[tuple[str, str]]], MetricKind]],
        values: Any,
        layout: Hashable | None = None,
        host_labels: Mapping[str, str] | None = None,
        topic: str | None = None,
        now_ms: int | None = None,
    ) -> Violation | None:
        """:meth:`check_event` for an event decoded into columns (the columnar stream path).

        Args:
            host, family, timestamp_ms: the event's header fields.
            series: per sample, ``((name, label pairs), kind)``.
            values: the samples' values, a NumPy float array in ``series`` order.
            layout: an id of ``series`` together with ``host_labels`` (a
                decoder template): what was judged of one layout is not
                judged again: for a known layout, the host, the instant and
                the extremes of the values are.
            host_labels: the event's host labels.
            topic: the topic it was read from (None: not checked).
            now_ms: the consumer's clock (None: read it now).
        """
        import numpy as np

        judged = self._layouts.get(layout) if layout is not None else None
        if judged is not None and topic is None:
            # A layout is remembered only once its event passed every field,
            # and it fixes the family and the host labels (their bytes are
            # part of it): of the fields, only the host and instant are new.
            found = self._host(host) or self._timestamp(
                timestamp_ms, "timestamp_ms", self._clock_ms() if now_ms is None else now_ms
            )
            if found is not None:  # the whole check, for its message
                return self.check_event_fields(
                    MetricEvent(host, family, timestamp_ms, (), host_labels=host_labels or {}),
                    topic,
                    now_ms,
                )
        else:
            event = MetricEvent(host, family, timestamp_ms, (), host_labels=host_labels or {})
            found = self.check_event_fields(event, topic, now_ms)
            if found is not None:
                return found
            if judged is None:
                judged = self._judge_layout(series, event.host_labels)
                if layout is not None:
                    self._remember_layout(layout, judged)
        violation, counters = judged
        if violation is not None:
            return violation
        # The extremes tell the common case at once: a NaN makes both NaN, an
        # infinity one of them; only then is the culprit looked for below.
        if not len(values) or (
            math.isfinite(values.min())
            and math.isfinite(values.max())
            and (not len(counters) or values.take(counters).min() >= 0)
        ):
            return None
        finite = np.isfinite(values)
        if not finite.all():
            at = int(np.argmin(finite))
            return Violation(
                "NonFiniteValue", f"the value of {_cut(series[at][0][0])} is {values[at]}"
            )
        if len(counters):
            negative = values[counters] < 0
            if negative.any():
                at = int(counters[int(np.argmax(negative))])
                return Violation(
                    "NegativeCounter",
                    f"counter {_cut(series[at][0][0])} is {values[at]}; counters are not negative",
                )
        return None

    def _judge_layout(
        self,
        series: Sequence[tuple[tuple[str, Iterable[tuple[str, str]]], MetricKind]],
        host_labels: Mapping[str, str],
    ) -> tuple[Violation | None, Any]:
        """The first rule a layout's names and labels break, and its counters' positions."""
        import numpy as np

        samples = tuple(Sample(name, 0.0, dict(labels), kind) for (name, labels), kind in series)
        event = MetricEvent("layout", "layout", 0, samples, host_labels=host_labels)
        counters = np.fromiter(
            (i for i, (_, kind) in enumerate(series) if kind is MetricKind.COUNTER),
            dtype=np.intp,
        )
        bad = self._scan_samples(event, first_only=True)
        return (bad[0][1] if bad else None), counters

    def _remember_layout(self, layout: Hashable, judged: tuple[Violation | None, Any]) -> None:
        if len(self._layouts) >= _LAYOUT_CACHE_LIMIT:
            self._layouts.clear()
        self._layouts[layout] = judged

    def valid_samples(self, event: MetricEvent) -> tuple[MetricEvent, list[Violation]]:
        """``event`` without its invalid samples, and what was wrong with them (the producer).

        Rules of the whole event (host id, host labels) are not checked here:
        :meth:`check_event_fields` does.
        """
        bad = self._scan_samples(event, first_only=False)
        if not bad:
            return event, []
        dropped = {index for index, _ in bad}
        kept = tuple(s for i, s in enumerate(event.samples) if i not in dropped)
        return replace(event, samples=kept), [violation for _, violation in bad]

    def _scan_samples(self, event: MetricEvent, *, first_only: bool) -> list[tuple[int, Violation]]:
        """(index, violation) of the event's bad samples; only the first with ``first_only``."""
        # The hot path of every consumer: what was seen valid before costs a
        # set lookup; anything else takes the full check (check_sample).
        host_names = frozenset(event.host_labels)
        room = self.limits.max_labels_per_series - SERIES_LABELS - len(host_names)
        good_names, good_labels = self._good_names, self._good_labels
        counter, isfinite = MetricKind.COUNTER, math.isfinite
        seen: set[object] = set()
        bad: list[tuple[int, Violation]] = []
        for index, sample in enumerate(event.samples):
            labels = sample.labels
            value = sample.value
            fast = (
                sample.name in good_names
                and len(labels) <= room
                and (type(value) is float or type(value) is int)
                and isfinite(value)
                and (value >= 0 or sample.kind is not counter)
                and good_labels.issuperset(labels.items())
            )
            found = None if fast else self.check_sample(sample, host_names)
            if found is None:
                series = (sample.name, frozenset(labels.items())) if labels else sample.name
                if series in seen:
                    found = _duplicate(sample)
                seen.add(series)
            if found is not None:
                bad.append((index, found))
                if first_only:
                    break
        return bad

    def _family_of(self, topic: str) -> str | None:
        name = topic.removeprefix(self._prefix) if topic.startswith(self._prefix) else None
        if name is None or not name.startswith("metrics.") or name.startswith("metrics.agg."):
            return None
        family = name.removeprefix("metrics.")
        return family if _FAMILY.fullmatch(family) else None

    def _unmirrored(self, topic: str) -> str:
        """The topic's name in its own region: a mirrored ``<region>.<topic>`` is judged as
        ``<topic>`` (only aggregates and alerts are mirrored)."""
        if topic.startswith(f"{self._prefix}metrics.") or topic == f"{self._prefix}alerts":
            return topic
        source = mirror_source(topic)
        return source[1] if source is not None else topic

    def _window_of(self, topic: str) -> int | None:
        """The window size, ms, of the aggregates ``topic`` carries (None: it carries none)."""
        try:
            return self._topic_windows[topic]
        except KeyError:
            pass
        window = self._read_window_of(topic)
        if len(self._topic_windows) < _MAX_TOPICS:
            self._topic_windows[topic] = window
        return window

    def _read_window_of(self, topic: str) -> int | None:
        topic = self._unmirrored(topic)
        if not topic.startswith(f"{self._prefix}metrics.agg."):
            return None
        match = _WINDOW_LABEL.fullmatch(topic.removeprefix(f"{self._prefix}metrics.agg."))
        if match is None:
            return None
        return int(match[1]) * _UNIT_MS[match[2]]

    def _host(self, host: str) -> Violation | None:
        if isinstance(host, str) and host in self._good_hosts:
            return None
        if not isinstance(host, str):
            return Violation("InvalidHostId", f"host id {host!r} is not text")
        if len(host) > self.limits.max_host_id_length:
            return Violation(
                "InvalidHostId",
                f"host id {_cut(host)} is longer than {self.limits.max_host_id_length}",
            )
        if not _HOST_ID.fullmatch(host):
            return Violation(
                "InvalidHostId",
                f"host id {_cut(host)} is not letters, digits and . _ : -"
                " (a letter or digit first)",
            )
        self._remember(self._good_hosts, host)
        return None

    def _metric_name(self, name: str) -> Violation | None:
        if isinstance(name, str) and name in self._good_names:
            return None
        if not isinstance(name, str):
            return Violation("InvalidMetricName", f"metric name {name!r} is not text")
        if len(name) > self.limits.max_metric_name_length:
            return Violation(
                "InvalidMetricName",
                f"metric name {_cut(name)} is longer than {self.limits.max_metric_name_length}",
            )
        if not _METRIC_NAME.fullmatch(name):
            return Violation(
                "InvalidMetricName", f"metric name {_cut(name)} breaks [a-zA-Z_:][a-zA-Z0-9_:]*"
            )
        self._remember(self._good_names, name)
        return None

    def _labels(self, labels: Mapping[str, str], where: str) -> Violation | None:
        good = self._good_labels
        for item in labels.items():
            if item in good:
                continue
            found = self._label(item[0], item[1], where)
            if found is not None:
                return found
            self._remember(good, item)
        return None

    def _label(self, name: str, value: str, where: str) -> Violation | None:
        limits = self.limits
        if not isinstance(name, str):
            return Violation("InvalidLabelName", f"label name {name!r} in {where} is not text")
        if len(name) > limits.max_label_name_length:
            return Violation(
                "InvalidLabelName",
                f"label name {_cut(name)} in {where} is longer than {limits.max_label_name_length}",
            )
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            return Violation(
                "InvalidLabelName",
                f"label name {_cut(name)} in {where} breaks [a-zA-Z_][a-zA-Z0-9_]*"
                " or starts with the reserved __",
            )
        if name in RESERVED_LABELS:
            return Violation(
                "InvalidLabelName",
                f"label name {name!r} in {where} is reserved: hoststream sets it on every series",
            )
        if not isinstance(value, str):
            return Violation("InvalidLabelValue", f"label {name} in {where} is not text")
        if len(value) > limits.max_label_value_length:
            return Violation(
                "InvalidLabelValue",
                f"label {name} in {where} is {len(value)} characters long, more than"
                f" {limits.max_label_value_length}",
            )
        if _CONTROL.search(value):
            return Violation(
                "InvalidLabelValue", f"label {name} in {where} holds a control character"
            )
        return None

    def _annotations(self, annotations: Mapping[str, str]) -> Violation | None:
        for name, value in annotations.items():
            if not _LABEL_NAME.fullmatch(name) or len(name) > self.limits.max_label_name_length:
                return Violation("InvalidLabelName", f"annotation name {_cut(name)} is invalid")
            if "\x00" in value or len(value) > 16 * self.limits.max_label_value_length:
                return Violation(
                    "InvalidLabelValue", f"annotation {name} is too long or holds a NUL"
                )
        return None

    def _label_count(self, labels: int, name: str) -> Violation | None:
        total = labels + SERIES_LABELS
        if total > self.limits.max_labels_per_series:
            return Violation(
                "TooManyLabels",
                f"a series of {_cut(name)} would have {total} labels (with __name__, instance"
                f" and job), more than {self.limits.max_labels_per_series}",
            )
        return None

    def _timestamp(self, ms: int, name: str, now: int) -> Violation | None:
        if ms < now - self._max_age_ms:
            return Violation(
                "StaleTimestamp",
                f"{name} {ms} is {(now - ms) / 1000:.0f} s behind this consumer's clock"
                f" (limit {self.limits.max_age_s:.0f} s)",
            )
        if ms > now + self._max_future_ms:
            return Violation(
                "FutureTimestamp",
                f"{name} {ms} is {(ms - now) / 1000:.0f} s ahead of this consumer's clock"
                f" (limit {self.limits.max_future_s:.0f} s)",
            )
        return None

    @staticmethod
    def _remember(cache: set[T], item: T) -> None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache.add(item)


def _duplicate(sample: Sample) -> Violation:
    return Violation(
        "DuplicateSeries",
        f"series {_cut(sample.name)} {_cut(repr(dict(sample.labels)))} appears twice in one"
        " event; which value is right is unknown",
    )


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _ShapeTopics:
    """The topics on which each shape's records passed in full, forgotten with the shape.

    A dict by ``id`` with a weak reference in each entry, whose callback
    removes it: a lookup per record is one dict probe and one dereference,
    where a ``WeakKeyDictionary`` makes and drops a reference each time.
    """

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[weakref.ref[Any], set[str | None]]] = {}

    def get(self, shape: Any) -> set[str | None] | None:
        entry = self._by_id.get(id(shape))
        # An id is reused only once its object is gone, and its entry with it.
        return entry[1] if entry is not None and entry[0]() is shape else None

    def add(self, shape: Any, topic: str | None) -> None:
        topics = self.get(shape)
        if topics is None:
            key, by_id = id(shape), self._by_id
            topics = set()
            by_id[key] = (weakref.ref(shape, lambda _gone: by_id.pop(key, None)), topics)
        topics.add(topic)

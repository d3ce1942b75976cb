"""What ``hoststream run`` shows: the live status line and the summary at the end.

Both are built from the components' own ``/metrics`` (scraped once a second
into a :class:`Scrape` per component) and the stack's service health, so they
are pure functions of those readings and the unit tests feed them recorded ones.
The last scrape of each component is kept: after Ctrl-C, which reaches the
components too, it is what the summary counts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote, urlencode

from prometheus_client.parser import text_string_to_metric_families
from rich.markup import escape

__all__ = [
    "FLEET_QUERY",
    "STATUS_WIDTH",
    "Health",
    "RunTotals",
    "Scrape",
    "ServiceHealth",
    "StatusLine",
    "Summary",
    "fleet_query_link",
    "fleet_vmui_link",
    "human_count",
    "human_duration",
]

#: The live status line never gets wider than this many columns.
STATUS_WIDTH = 100


@dataclass(frozen=True)
class Scrape:
    """One component's ``/metrics`` at one instant: every sample, by name."""

    at_s: float
    samples: Mapping[str, Sequence[tuple[Mapping[str, str], float]]]

    @classmethod
    def parse(cls, text: str, at_s: float) -> Scrape:
        samples: dict[str, list[tuple[Mapping[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return cls(at_s, samples)

    def total(self, name: str, **labels: str) -> float:
        """The sum of ``name`` over the series whose labels include ``labels``."""
        return sum(
            value
            for series, value in self.samples.get(name, ())
            if all(series.get(k) == v for k, v in labels.items())
        )


@dataclass(frozen=True)
class RunTotals:
    """The pipeline's counters, summed over the components' latest scrapes."""

    events_produced: float = 0.0
    samples_produced: float = 0.0
    windows_emitted: float = 0.0
    rows_stored: float = 0.0
    alerts_fired: float = 0.0
    alerts_resolved: float = 0.0
    dead_lettered: float = 0.0
    stream_lag: float = 0.0
    sink_lag: float = 0.0

    @classmethod
    def from_scrapes(cls, scrapes: Iterable[Scrape]) -> RunTotals:
        found = list(scrapes)

        def total(name: str, **labels: str) -> float:
            return sum(s.total(name, **labels) for s in found)

        return cls(
            events_produced=total("hoststream_producer_events_total"),
            samples_produced=total("hoststream_producer_samples_total"),
            windows_emitted=total("hoststream_stream_windows_emitted_total"),
            rows_stored=total("hoststream_sink_records_written_total", sink="sql"),
            alerts_fired=total("hoststream_stream_alerts_total", state="firing"),
            alerts_resolved=total("hoststream_stream_alerts_total", state="resolved"),
            # Both ends of the pipeline send what they can never handle to <topic>.dlq.
            dead_lettered=total("hoststream_sink_records_dead_lettered_total")
            + total("hoststream_stream_rejected_messages_total"),
            stream_lag=total("hoststream_stream_consumer_lag"),
            sink_lag=total("hoststream_sink_consumer_lag"),
        )


class Health(StrEnum):
    UP = "up"
    DOWN = "down"
    #: Still being built or installed in the background; joins when ready.
    BUILDING = "building"
    #: Running, but not answering yet.
    STARTING = "starting"


@dataclass(frozen=True)
class ServiceHealth:
    """A stack service's or a pipeline component's state; ``detail`` replaces "down"."""

    name: str
    health: Health
    detail: str = ""


#: Short names for the status line, so every service fits on it.
SHORT_NAMES = {
    "postgres": "pg",
    "victoriametrics": "vm",
    "alertmanager": "am",
    "schema-registry": "registry",
    "victorialogs": "logs",
    "sink-victoriametrics": "sink-vm",
}


def human_count(value: float) -> str:
    """3 significant figures at most: 950, 12.3k, 4.5M."""
    rounded = float(f"{value:.3g}")  # first, so 999,999 becomes 1M and not 1000k
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(rounded) >= limit:
            return f"{rounded / limit:g}{suffix}"
    return f"{rounded:g}"


def human_duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass
class StatusLine:
    """The live line: throughput with units, lag in messages, each service's health.

    Health is the count of services and components that answer, then each
    one that does not: ``pg down``, ``sink-sql exited 1``, ``building jaeger
    logs``, ``starting stream``.

    Rates are the change of the producers' counters over the last
    ``rate_window_s`` seconds: producers send once per collection interval,
    so a rate between two one-second scrapes would mostly read 0.
    """

    width: int = STATUS_WIDTH
    rate_window_s: float = 20.0
    _history: deque[tuple[float, RunTotals]] = field(default_factory=deque, repr=False)

    def _rates(self, now: float, totals: RunTotals) -> tuple[float, float]:
        self._history.append((now, totals))
        while len(self._history) > 2 and now - self._history[1][0] >= self.rate_window_s:
            self._history.popleft()
        then, before = self._history[0]
        if now <= then:
            return 0.0, 0.0
        span = now - then
        return (
            max(0.0, totals.samples_produced - before.samples_produced) / span,
            max(0.0, totals.events_produced - before.events_produced) / span,
        )

    def render(
        self,
        elapsed_s: float,
        scrapes: Iterable[Scrape],
        services: Sequence[ServiceHealth],
        components: Sequence[ServiceHealth] = (),
    ) -> tuple[str, str]:
        """The line as plain text (at most ``width`` columns) and as rich markup.

        Args:
            elapsed_s: seconds since the pipeline started.
            scrapes: each running component's latest scrape.
            services: the stack's services.
            components: the pipeline's processes.
        """
        found = list(scrapes)
        totals = RunTotals.from_scrapes(found)
        samples_rate = events_rate = 0.0
        if found:
            samples_rate, events_rate = self._rates(max(s.at_s for s in found), totals)
        # Groups of (plain, markup) pieces, most important first: the tail is what gets cut.
        head = (
            f"{human_duration(elapsed_s)} {human_count(samples_rate)} samples/s "
            f"{human_count(events_rate)} events/s"
        )
        lag = f"lag {human_count(totals.stream_lag)} stream, {human_count(totals.sink_lag)} sinks"
        groups: list[list[tuple[str, str]]] = [[(head, escape(head))], [(lag, escape(lag))]]
        # Services and components together: how many answer, then each one
        # that does not by name, failures first, since the tail may be cut.
        every = [*services, *components]
        up = sum(s.health is Health.UP for s in every)
        count = f"{up}/{len(every)} up"
        colour = "green" if up == len(every) else "yellow"
        pieces = [(count, f"[{colour}]{escape(count)}[/]")]
        pieces += [_health_piece(s) for s in every if s.health is Health.DOWN]
        for state in (Health.BUILDING, Health.STARTING):
            names = [SHORT_NAMES.get(s.name, s.name) for s in every if s.health is state]
            # One piece per name, so a long list is cut between names, not dropped whole.
            for index, name in enumerate(names):
                text = f"{state.value} {name}" if index == 0 else name
                pieces.append((text, f"[yellow]{escape(text)}[/]"))
        groups.append(pieces)
        return _fit(groups, self.width)


def _health_piece(item: ServiceHealth) -> tuple[str, str]:
    text = f"{SHORT_NAMES.get(item.name, item.name)} {item.detail or 'down'}"
    return text, f"[red]{escape(text)}[/]"


def _fit(groups: Sequence[Sequence[tuple[str, str]]], width: int) -> tuple[str, str]:
    """Pieces joined by " " within a group and " · " between groups, cut with " …"."""
    flat = [
        (text, marked, "" if g == 0 and i == 0 else (" · " if i == 0 else " "))
        for g, group in enumerate(groups)
        for i, (text, marked) in enumerate(group)
    ]
    plain = markup = ""
    for index, (text, marked, separator) in enumerate(flat):
        last = index == len(flat) - 1
        # Room for " …" unless this is the last piece.
        if len(plain) + len(separator) + len(text) > width - (0 if last else 2):
            return plain + " …", markup + " …"
        plain += separator + text
        markup += separator + marked
    return plain, markup


#: Every host's CPU busy ratio: the fleet at a glance.
FLEET_QUERY = (
    'sum by (instance) (rate(node_cpu_seconds_total{job="hoststream",mode!="idle"}[1m]))'
    ' / sum by (instance) (rate(node_cpu_seconds_total{job="hoststream"}[1m]))'
)


def fleet_vmui_link(vm_url: str, range_s: float) -> str:
    """VictoriaMetrics' built-in UI, opened on :data:`FLEET_QUERY` over the run."""
    minutes = max(5, int(range_s // 60) + 1)
    params = {"g0.expr": FLEET_QUERY, "g0.range_input": f"{minutes}m", "g0.tab": "0"}
    return f"{vm_url}/vmui/#/?{urlencode(params, quote_via=quote)}"


def fleet_query_link(vm_url: str) -> str:
    """:data:`FLEET_QUERY` on the query API, for a VictoriaMetrics built without its UI."""
    return f"{vm_url}/api/v1/query?{urlencode({'query': FLEET_QUERY}, quote_via=quote)}"


@dataclass(frozen=True)
class Summary:
    """What the run did and where to look next, printed when it ends.

    Args:
        duration_s: how long the pipeline ran.
        totals: the components' counters at their last scrape.
        samples_stored: raw samples VictoriaMetrics holds from the run;
            None when it could not be asked.
        links: "where to look next", as (what, URL) in order.
    """

    duration_s: float
    totals: RunTotals
    samples_stored: float | None
    links: Sequence[tuple[str, str]]

    def lines(self) -> list[str]:
        t = self.totals
        stored = "unknown" if self.samples_stored is None else f"{self.samples_stored:,.0f}"
        rows = [
            ("samples produced", f"{t.samples_produced:,.0f} in {t.events_produced:,.0f} events"),
            ("samples stored", f"{stored} in VictoriaMetrics"),
            ("windows emitted", f"{t.windows_emitted:,.0f}"),
            ("rows stored", f"{t.rows_stored:,.0f} in PostgreSQL"),
            ("alerts", f"{t.alerts_fired:,.0f} fired, {t.alerts_resolved:,.0f} resolved"),
            ("dead-lettered", f"{t.dead_lettered:,.0f} messages"),
        ]
        # One column for both tables, wide enough for every name.
        width = max(len(name) for name, _ in [*rows, *self.links]) + 2
        out = [f"hoststream ran for {human_duration(self.duration_s)}"]
        out += [f"  {name:<{width}}{value}" for name, value in rows]
        if self.links:
            out.append("where to look next")
            out += [f"  {name:<{width}}{url}" for name, url in self.links]
        return out

"""The live status line and the end-of-run summary of `hoststream run`, from recorded scrapes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hoststream.run_report import (
    FLEET_QUERY,
    STATUS_WIDTH,
    Health,
    RunTotals,
    Scrape,
    ServiceHealth,
    StatusLine,
    Summary,
    fleet_query_link,
    fleet_vmui_link,
    human_count,
)

PRODUCER = """\
# TYPE hoststream_producer_events_total counter
hoststream_producer_events_total{family="cpu"} 100.0
hoststream_producer_events_total{family="memory"} 100.0
# TYPE hoststream_producer_samples_total counter
hoststream_producer_samples_total{family="cpu"} 4000.0
hoststream_producer_samples_total{family="memory"} 2000.0
"""
STREAM = """\
# TYPE hoststream_stream_windows_emitted_total counter
hoststream_stream_windows_emitted_total{window="1m"} 700.0
hoststream_stream_windows_emitted_total{window="5m"} 50.0
# TYPE hoststream_stream_alerts_total counter
hoststream_stream_alerts_total{state="firing"} 3.0
hoststream_stream_alerts_total{state="resolved"} 2.0
# TYPE hoststream_stream_rejected_messages_total counter
hoststream_stream_rejected_messages_total{topic="metrics.cpu"} 1.0
# TYPE hoststream_stream_consumer_lag gauge
hoststream_stream_consumer_lag{partition="0",topic="metrics.cpu"} 12.0
hoststream_stream_consumer_lag{partition="1",topic="metrics.cpu"} 30.0
"""
SQL_SINK = """\
# TYPE hoststream_sink_records_written_total counter
hoststream_sink_records_written_total{sink="sql"} 745.0
# TYPE hoststream_sink_records_dead_lettered_total counter
hoststream_sink_records_dead_lettered_total{error="SchemaError",sink="sql"} 4.0
# TYPE hoststream_sink_consumer_lag gauge
hoststream_sink_consumer_lag{partition="0",sink="sql",topic="metrics.agg.1m"} 5.0
"""
VM_SINK = """\
# TYPE hoststream_sink_records_written_total counter
hoststream_sink_records_written_total{sink="victoriametrics"} 200.0
"""

SERVICES = [
    ServiceHealth(name, Health.UP)
    for name in ("postgres", "victoriametrics", "alertmanager", "kafka", "schema-registry")
] + [ServiceHealth("jaeger", Health.BUILDING), ServiceHealth("victorialogs", Health.BUILDING)]
COMPONENTS = [
    ServiceHealth(name, Health.UP)
    for name in (
        "producer",
        "simulator",
        "stream",
        "sink-victoriametrics",
        "sink-sql",
        "sink-alerts",
        "api",
    )
]


def scrapes(at_s: float, scale: float = 1.0) -> list[Scrape]:
    texts = [PRODUCER, STREAM, SQL_SINK, VM_SINK]
    found = [Scrape.parse(text, at_s) for text in texts]
    if scale == 1.0:
        return found
    return [
        Scrape(
            s.at_s,
            {k: [(labels, value * scale) for labels, value in v] for k, v in s.samples.items()},
        )
        for s in found
    ]


def test_totals_add_up_each_counter_over_its_labels_and_components() -> None:
    totals = RunTotals.from_scrapes(scrapes(10.0))
    assert totals == RunTotals(
        events_produced=200,
        samples_produced=6000,
        windows_emitted=750,
        rows_stored=745,  # the SQL sink only: the VM sink's records are not rows
        alerts_fired=3,
        alerts_resolved=2,
        dead_lettered=5,  # the stream's rejected messages and the sinks' dead letters
        stream_lag=42,
        sink_lag=5,
    )


def test_status_line_shows_rates_with_units_and_lag() -> None:
    line = StatusLine()
    line.render(1.0, scrapes(100.0), [])
    plain, _ = line.render(3.0, scrapes(102.0, scale=2.0), [ServiceHealth("kafka", Health.UP)])
    # 6000 more samples and 200 more events in 2 s.
    assert plain.startswith("3s 3k samples/s 100 events/s · ")
    assert " · lag 84 stream, 10 sinks · " in plain  # gauges: the latest reading (doubled)
    assert plain.endswith(" · 1/1 up")


def test_status_line_rates_span_the_collection_interval_not_one_scrape() -> None:
    # Producers send once per interval: the rate is over the last 20 s of scrapes.
    line = StatusLine(rate_window_s=20.0)
    line.render(0.0, scrapes(0.0), [])
    line.render(10.0, scrapes(10.0, scale=2.0), [])
    plain, _ = line.render(11.0, scrapes(11.0, scale=2.0), [])
    assert plain.startswith("11s 545 samples/s 18.2 events/s")  # 6000 and 200 in 11 s
    line.render(30.0, scrapes(30.0, scale=2.0), [])
    plain, _ = line.render(31.0, scrapes(31.0, scale=2.0), [])
    assert plain.startswith("31s 0 samples/s 0 events/s")  # nothing new in the last 20 s


def test_status_line_on_a_first_run_fits_100_columns_whole() -> None:
    line = StatusLine()
    line.render(0.0, scrapes(0.0), SERVICES, COMPONENTS)
    plain, _ = line.render(42.0, scrapes(10.0, scale=1.5), SERVICES, COMPONENTS)
    assert plain == (
        "42s 300 samples/s 10 events/s · lag 63 stream, 7.5 sinks · 12/14 up building jaeger logs"
    )
    assert len(plain) <= STATUS_WIDTH


def test_status_line_at_its_longest_is_cut_to_100_columns_keeping_failures() -> None:
    line = StatusLine()
    line.render(0.0, scrapes(0.0), SERVICES, COMPONENTS)
    sql_exited = ServiceHealth("sink-sql", Health.DOWN, "exited 1")
    components = [c if c.name != "sink-sql" else sql_exited for c in COMPONENTS]
    plain, markup = line.render(3725.0, scrapes(1.0, scale=5e6), SERVICES, components)
    assert len(plain) <= STATUS_WIDTH, plain
    assert plain.startswith("1h02m 30G samples/s 1G events/s · lag 210M stream, 25M sinks · ")
    # A dead component comes right after the count; what is on its way is cut first.
    assert plain.endswith(" · 11/14 up sink-sql exited 1 …")
    assert "[red]sink-sql exited 1[/]" in markup


def test_status_line_says_which_services_are_still_being_built_or_down() -> None:
    services = [
        ServiceHealth("victoriametrics", Health.UP),
        ServiceHealth("postgres", Health.DOWN),
        ServiceHealth("jaeger", Health.BUILDING),
    ]
    components = [ServiceHealth("stream", Health.STARTING), ServiceHealth("api", Health.UP)]
    plain, markup = StatusLine().render(5.0, [], services, components)
    assert plain.endswith(" · 2/5 up pg down building jaeger starting stream")
    assert "[red]pg down[/]" in markup
    assert "[yellow]building jaeger[/]" in markup
    assert "[yellow]starting stream[/]" in markup
    assert "[yellow]2/5 up[/]" in markup


def test_a_long_list_of_starting_components_is_cut_between_names() -> None:
    starting = [ServiceHealth(c.name, Health.STARTING) for c in COMPONENTS]
    plain, _ = StatusLine(width=90).render(21.0, [], SERVICES[:5], starting)
    assert plain == (
        "21s 0 samples/s 0 events/s · lag 0 stream, 0 sinks · 5/12 up starting producer simulator …"
    )


def test_status_line_counts_everything_up_in_green() -> None:
    plain, markup = StatusLine().render(5.0, [], SERVICES[:5], COMPONENTS)
    assert plain.endswith(" · 12/12 up")
    assert markup.endswith("[green]12/12 up[/]")


def test_status_line_cut_short_ends_with_an_ellipsis_within_the_width() -> None:
    many = [ServiceHealth(f"service-{n}", Health.DOWN) for n in range(30)]
    plain, _ = StatusLine(width=60).render(5.0, [], many)
    assert plain.endswith(" …")
    assert len(plain) <= 60


def test_human_counts_keep_three_figures() -> None:
    values = (0, 0.5, 12, 950, 999.7, 12_345, 4_500_000, 999_999, 2.5e12)
    assert [human_count(v) for v in values] == [
        "0",
        "0.5",
        "12",
        "950",
        "1k",
        "12.3k",
        "4.5M",
        "1M",
        "2500G",
    ]


def test_summary_names_every_count_and_where_to_look() -> None:
    summary = Summary(
        duration_s=302.0,
        totals=RunTotals.from_scrapes(scrapes(10.0)),
        samples_stored=5990,
        links=[("API docs", "http://127.0.0.1:8000/docs"), ("traces", "http://j/search")],
    )
    text = "\n".join(summary.lines())
    assert summary.lines()[0] == "hoststream ran for 5m02s"
    for expected in (
        "samples produced  6,000 in 200 events",
        "samples stored    5,990 in VictoriaMetrics",
        "windows emitted   750",
        "rows stored       745 in PostgreSQL",
        "alerts            3 fired, 2 resolved",
        "dead-lettered     5 messages",
        "where to look next",
        "API docs          http://127.0.0.1:8000/docs",
        "traces            http://j/search",
    ):
        assert expected in text, expected


def test_summary_names_and_links_keep_one_column_however_long_a_name() -> None:
    links = [("API docs", "http://a/docs"), ("logs (VictoriaLogs)", "http://l/select/vmui/")]
    lines = Summary(1.0, RunTotals(), 1, links).lines()
    assert "  logs (VictoriaLogs)  http://l/select/vmui/" in lines
    assert "  API docs             http://a/docs" in lines
    assert "  samples stored       1 in VictoriaMetrics" in lines


def test_summary_says_unknown_when_victoriametrics_could_not_be_asked() -> None:
    summary = Summary(1.0, RunTotals(), None, [])
    assert "  samples stored    unknown in VictoriaMetrics" in summary.lines()


def test_vmui_link_opens_a_fleet_query_over_the_run() -> None:
    link = fleet_vmui_link("http://127.0.0.1:8428", range_s=600)
    base, _, fragment = link.partition("#")
    assert base == "http://127.0.0.1:8428/vmui/"
    params = parse_qs(urlsplit(fragment).query)
    assert params["g0.range_input"] == ["11m"]
    assert 'node_cpu_seconds_total{job="hoststream",mode!="idle"}' in params["g0.expr"][0]
    assert "sum by (instance)" in params["g0.expr"][0]


def test_query_link_asks_the_same_fleet_question() -> None:
    link = fleet_query_link("http://127.0.0.1:8428")
    base, _, query = link.partition("?")
    assert base == "http://127.0.0.1:8428/api/v1/query"
    assert parse_qs(query)["query"] == [FLEET_QUERY]

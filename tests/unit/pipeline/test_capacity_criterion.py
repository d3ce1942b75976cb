"""The pipeline benchmark's "lag is flat" criterion, on recorded lag curves.

The lag a group reports is a saw-tooth: each collection tick (and each window
size's aggregates) arrives in one burst and is then consumed. The criterion
reads the backlog from the lag's floor, so bursts of any height do not count
as growth while a backlog that is left over from burst to burst does.
"""

from __future__ import annotations

from bench.pipeline import PROBE_OVERHEAD_S, floor, growing_groups, lag_total, search

INPUT_PER_S = 100.0


def saw_tooth(seconds: int, period: int, burst: float, leftover_per_s: float = 0.0) -> list:
    """A lag that jumps by ``burst`` every ``period`` s and is consumed within it,
    except for ``leftover_per_s`` a second that piles up."""
    points = []
    for t in range(seconds):
        phase = t % period
        left = max(0.0, burst * (1 - 2 * phase / period))
        points.append((float(t), left + leftover_per_s * t))
    return points


def test_the_floor_is_the_trailing_minimum_once_a_whole_span_has_passed() -> None:
    points = [(0.0, 5.0), (1.0, 9.0), (2.0, 3.0), (3.0, 7.0), (4.0, 8.0)]

    assert floor(points, 2.0) == [(2.0, 3.0), (3.0, 3.0), (4.0, 7.0)]


def test_bursts_consumed_within_their_period_are_not_growth_however_high() -> None:
    # A minute's aggregates in one burst of 60 s of input, drained within the minute.
    lag = {"sink-sql": saw_tooth(300, 60, burst=60 * INPUT_PER_S)}

    growing, _, last = growing_groups(lag, {"sink-sql": INPUT_PER_S}, {"sink-sql": 60}, 150)

    assert growing == []
    assert last["sink-sql"] == 0.0


def test_a_backlog_left_over_from_burst_to_burst_grows() -> None:
    # A fifth of the input is left unconsumed: 20 messages a second pile up.
    lag = {"stream": saw_tooth(150, 10, burst=10 * INPUT_PER_S, leftover_per_s=20.0)}

    growing, slopes, _ = growing_groups(lag, {"stream": INPUT_PER_S}, {"stream": 10}, 75)

    assert growing == ["stream"]
    assert 19.0 < slopes["stream"] < 21.0


def test_a_backlog_rising_slower_than_the_growth_share_is_flat() -> None:
    lag = {"stream": saw_tooth(150, 10, burst=10 * INPUT_PER_S, leftover_per_s=5.0)}

    growing, _, _ = growing_groups(lag, {"stream": INPUT_PER_S}, {"stream": 10}, 75)

    assert growing == []


def test_the_search_halves_from_a_first_size_that_fails_then_bisects_and_confirms() -> None:
    capacity = 300
    seen: list[tuple[int, float]] = []

    def probe(hosts: int, seconds: float) -> dict:
        seen.append((hosts, seconds))
        return {"hosts": hosts, "samples_per_s": hosts * 18, "sustained": hosts <= capacity}

    found = search(probe, probe_s=150, confirm_s=300, start_hosts=800)

    assert [h for h, _ in seen] == [800, 400, 200, 300, 350, 300]
    assert seen[-1] == (300, 300)
    assert found["highest_sustained_hosts"] == 300
    assert found["confirmed"] is True


def test_a_size_that_failed_creating_new_series_is_judged_again_with_them_existing() -> None:
    capacity = 300
    had_series = [0]
    seen: list[tuple[int, int]] = []

    def probe(hosts: int, seconds: float) -> dict:
        new = max(0, hosts - had_series[0])
        had_series[0] = max(had_series[0], hosts)
        seen.append((hosts, new))
        # Creating series costs more than the fleet's load: no new host is sustained.
        sustained = hosts <= capacity and new == 0
        return {
            "hosts": hosts,
            "samples_per_s": hosts * 18,
            "sustained": sustained,
            "hosts_with_new_series": new,
        }

    found = search(probe, probe_s=150, confirm_s=300, start_hosts=200, refine_steps=1)

    assert seen == [(200, 200), (200, 0), (400, 200), (400, 0), (300, 0), (300, 0)]
    assert [p["phase"] for p in found["probes"]][:2] == ["coarse", "coarse, series existing"]
    assert found["highest_sustained_hosts"] == 300
    assert found["confirmed"] is True


def test_the_lag_is_summed_over_every_partition_of_both_gauges_and_nothing_else() -> None:
    text = "\n".join(
        [
            "# HELP hoststream_sink_consumer_lag Messages behind.",
            "# TYPE hoststream_sink_consumer_lag gauge",
            'hoststream_sink_consumer_lag{sink="sql",topic="a",partition="0"} 12.0',
            'hoststream_sink_consumer_lag{sink="sql",topic="a",partition="1"} 3.0',
            'hoststream_stream_consumer_lag{topic="m",partition="0"} 100.0',
            "hoststream_sink_consumer_lag_seconds 7.0",
            'hoststream_sink_written_total{sink="sql"} 5000.0',
        ]
    )

    assert lag_total(text) == 115.0


def test_a_search_with_a_time_budget_starts_no_probe_it_cannot_finish() -> None:
    now = [0.0]

    def probe(hosts: int, seconds: float) -> dict:
        now[0] += seconds + PROBE_OVERHEAD_S
        return {"hosts": hosts, "samples_per_s": hosts * 18, "sustained": hosts <= 300}

    # Room for three 150 s probes (300 s each with the overhead), not for the 300 s confirmation.
    found = search(probe, 150, 300, start_hosts=200, budget_s=1000, clock=lambda: now[0])

    assert [p["hosts"] for p in found["probes"]] == [200, 400, 300]
    assert found["stopped_by_budget"] is True
    assert found["confirmed"] is False
    assert found["highest_sustained_hosts"] == 300

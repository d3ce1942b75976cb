"""The agent's wiring of settings to collectors, and its event numbering."""

from __future__ import annotations

from hoststream.config import Settings
from hoststream.producers.agent import HostEvents, collectors_for
from hoststream.producers.collectors import RecordedSource, default_collectors
from hoststream.schemas import EventBatch, EventValues
from tests.support.paths import DATA

SNAPSHOT = DATA / "debian12_vm_2cpu.json"


EDGE_CASES = DATA / "edge_cases.json"


def disk_devices(settings: Settings) -> set[str]:
    [disk] = [
        c
        for c in collectors_for(settings, RecordedSource.from_file(EDGE_CASES))
        if c.family == "disk"
    ]
    return {s.labels["device"] for s in disk.collect() if s.name.startswith("node_disk_")}


def test_loop_devices_left_out_by_default_and_kept_when_the_filter_is_empty() -> None:
    assert not any(d.startswith("loop") for d in disk_devices(Settings()))
    assert "loop0" in disk_devices(Settings(collect_disk_device_exclude=""))
    custom = disk_devices(Settings(collect_disk_device_exclude="^loop0$"))
    assert "loop0" not in custom
    assert "loop12" in custom


def process_state_counts(settings: Settings) -> dict[str, float]:
    [system] = [
        c
        for c in collectors_for(settings, RecordedSource.from_file(SNAPSHOT))
        if c.family == "system"
    ]
    return {
        s.labels["state"]: s.value for s in system.collect() if s.name == "node_processes_state"
    }


def test_process_states_are_opt_in_as_node_exporters_processes_collector() -> None:
    assert process_state_counts(Settings()) == {}
    opted_in = process_state_counts(Settings(collect_process_states=True))
    assert opted_in["S"] == 62
    assert opted_in["I"] == 36


def test_events_are_numbered_per_family_and_carry_host_labels() -> None:
    collectors = default_collectors(RecordedSource.from_file(SNAPSHOT))
    source = HostEvents(collectors, "h1", {"role": "db"})
    first = list(source.events(10_000, 10_000))
    second = list(source.events(20_000, 10_000))
    assert [e.family for e in first] == ["cpu", "memory", "disk", "network", "system"]
    assert {e.seq for e in first} == {0}
    assert {e.seq for e in second} == {1}
    assert all(e.host_labels == {"role": "db"} and e.host == "h1" for e in first)


def test_a_failing_collector_does_not_stop_the_others() -> None:
    class Broken:
        family = "disk"

        def collect(self):
            raise OSError("stale NFS handle")

    collectors = default_collectors(RecordedSource.from_file(SNAPSHOT), families=["cpu"])
    source = HostEvents([*collectors, Broken()], "h1", {})
    events = list(source.events(10_000, 10_000))
    assert [e.family for e in events] == ["cpu"]


def test_events_carry_the_configured_region() -> None:
    collectors = default_collectors(RecordedSource.from_file(SNAPSHOT))
    assert {e.region for e in HostEvents(collectors, "h1", {}).events(10_000, 10_000)} == {None}
    regional = HostEvents(collectors, "h1", {}, region="region-a")
    assert {e.region for e in regional.events(10_000, 10_000)} == {"region-a"}


def test_the_producer_stamps_hoststream_region_on_real_and_simulated_hosts(monkeypatch) -> None:
    from types import SimpleNamespace

    from hoststream.producers.app import event_source

    monkeypatch.setenv("HOSTSTREAM_REGION", "region-b")
    settings = Settings()
    assert settings.region == "region-b"
    for simulated in (0, 2):
        # A double of the runtime: event_source reads only its settings.
        runtime = SimpleNamespace(
            settings=settings.model_copy(update={"simulate_hosts": simulated})
        )
        source = event_source(runtime)  # type: ignore[arg-type]
        given = source.events(10_000, 10_000)
        events = [
            v.event() if isinstance(v, EventValues) else v
            for e in given
            for v in (e.event_values() if isinstance(e, EventBatch) else (e,))
        ]
        assert {e.region for e in events} == {"region-b"}

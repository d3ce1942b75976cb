"""CI's port reservation covers every stack port it must and keeps what was set."""

from __future__ import annotations

from pathlib import Path

from tests.support.reserve_ports import merged, stack_ports


def test_merged_keeps_existing_entries_and_adds_ports_in_order() -> None:
    assert merged("", {39093, 39092}) == "39092,39093"
    assert merged("50000-50010\n", {39092}) == "50000-50010,39092"


def test_stack_ports_include_the_cluster_brokers_in_the_ephemeral_range(tmp_path: Path) -> None:
    ports = stack_ports(tmp_path, offset=0)
    assert {19092, 29092, 39092, 39093, 9092, 8428, 5432} <= ports
    assert 39092 + 100 in stack_ports(tmp_path / "moved", offset=100)

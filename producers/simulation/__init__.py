"""Simulated hosts for load: :class:`SimulatedFleet` is where to start.

A simulated host sends the same families, sample names, labels and kinds as
the real collectors (both build on :mod:`producers.collectors.names`), with
values that follow a daily cycle, spike, reset at reboots and fill disks,
all derived from (seed, host, timestamp) by counter-based hashing
(:mod:`producers.simulation.hashing`).
"""

from __future__ import annotations

from hoststream.producers.simulation.fleet import FleetBatches, FleetValues, SimulatedFleet
from hoststream.producers.simulation.profile import HostProfile, host_id, make_profile

__all__ = [
    "FleetBatches",
    "FleetValues",
    "HostProfile",
    "SimulatedFleet",
    "host_id",
    "make_profile",
]

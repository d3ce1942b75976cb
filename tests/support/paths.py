"""Where the tests find the repository, the local stack's state and recorded data."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".hoststream"
#: Recorded hosts and /proc files the producer tests read.
DATA = Path(__file__).resolve().parent / "data"

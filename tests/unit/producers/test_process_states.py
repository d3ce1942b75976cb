"""Process states counted with each process's stat file kept open between calls (real /proc)."""

from __future__ import annotations

import os
import subprocess
import sys

from hoststream.producers.collectors.procfs import ProcessStates, count_process_states


def test_kept_open_files_count_what_a_fresh_walk_counts() -> None:
    states = ProcessStates("/proc")
    first = states()
    again = states()  # now from the files kept open
    fresh = count_process_states("/proc")
    # Other processes come and go meanwhile: the totals agree within a few.
    assert abs(sum(again.values()) - sum(fresh.values())) <= 5
    assert sum(first.values()) > 0
    states.close()


def test_an_exited_process_is_dropped_and_its_file_closed() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    states = ProcessStates("/proc")
    states()
    pid = str(child.pid)
    assert pid in states._open
    child.kill()
    child.wait()
    states()
    assert pid not in states._open
    states.close()


def test_no_more_files_open_than_allowed() -> None:
    before = len(os.listdir("/proc/self/fd"))
    states = ProcessStates("/proc", max_open=3)
    counts = states()
    assert len(os.listdir("/proc/self/fd")) - before <= 3
    assert sum(counts.values()) >= 1  # this process at least
    states.close()
    assert len(os.listdir("/proc/self/fd")) <= before

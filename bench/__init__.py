"""hoststream's benchmarks: `make bench` (or `python -m bench.run`).

Every figure is reported beside a baseline measured in the same run, on the
same machine, as a ratio: these machines are shared and absolute numbers drift.
"""

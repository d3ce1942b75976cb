"""Peers the benchmarks compare hoststream with; each runs as ``python -m bench.peers.<name>``."""

"""Deprecated (kept for one release): ``rlnas.bench`` moved to ``rlnas.throughput``."""
from .deprecation import warn_moved
from .throughput import SETTINGS, bench_space, run_bench

warn_moved("rlnas.bench", "rlnas.throughput")

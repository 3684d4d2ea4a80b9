"""Offline benchmarking: latency percentiles, memory, accuracy and an environment fingerprint.

Every result says which board profile it used, which device REALLY executed and at which
precision; results go to JSON/CSV/Markdown/PNG and to a local SQLite history.
"""

from __future__ import annotations

from .api import bench, bench_matrix
from .harness import BenchSettings, bench_file, load_model_file, random_inputs
from .history import History
from .result import BenchResult
from .stats import summarize

__all__ = ["BenchResult", "BenchSettings", "History", "bench", "bench_file", "bench_matrix",
           "load_model_file", "random_inputs", "summarize"]

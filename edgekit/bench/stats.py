"""Latency statistics: the same percentiles every tool here reports, from raw samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KEYS = ("min", "mean", "p50", "p90", "p99", "max")


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """min, mean, p50, p90, p99 and max of latency samples in milliseconds.

    Percentiles use numpy's linear interpolation (benchmark_app reports the median the same way).
    """
    if len(samples_ms) == 0:
        raise ValueError("no latency samples")
    a = np.asarray(samples_ms, np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"min": float(a.min()), "mean": float(a.mean()), "p50": float(p50),
            "p90": float(p90), "p99": float(p99), "max": float(a.max())}


def fps(stats: dict[str, float]) -> float:
    """Frames per second of one synchronous stream: 1000 / mean latency."""
    return 1000.0 / stats["mean"] if stats["mean"] > 0 else float("inf")

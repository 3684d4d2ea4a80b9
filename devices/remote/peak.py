"""The board's practical peak: float32 matrix multiply (numpy's BLAS) at a given thread count.

A model's achieved GFLOP/s means little alone; against what this very board reaches on the
most optimised kernel there is (SGEMM) at the same thread count, it says how much of the
machine the model uses. BLAS libraries read their thread count from the environment when
they load, so the probe runs in a fresh child process with ``OPENBLAS_NUM_THREADS`` (and the
OpenMP/MKL equivalents) set, and reports the count the library really used where
threadpoolctl can read it back.

Run as ``python -m edgekit.devices.remote.peak --threads N``: prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
SIZES = (256, 512, 1024, 2048)  # below 256 a multiply measures call overhead
MIN_CALL_S = 0.05  # grow the matrix until one multiply takes this long (a fast board)


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return counts[0] if counts else None


def _timed(a: Any, b: Any) -> float:
    t0 = time.perf_counter()
    a @ b
    return time.perf_counter() - t0


def probe(*, seconds: float = 1.0) -> dict[str, Any]:
    """Best float32 GFLOP/s of ``a @ b`` in this process (threads as the environment says).

    The size grows until a multiply takes ``MIN_CALL_S`` (small matrices measure call
    overhead, not the cores); the best of repeated calls within ``seconds`` is the peak.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    for n in SIZES:
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        a @ b  # BLAS warms up (thread pool start, page faults)
        # The fastest of 3 calls decides: one call that lost its core to another process
        # would stop the growth early (seen at n=256 on a loaded 2-core host).
        if min(_timed(a, b) for _ in range(3)) >= MIN_CALL_S:
            break
    best, calls = 0.0, 0
    deadline = time.perf_counter() + seconds
    while calls < 3 or time.perf_counter() < deadline:
        best = max(best, 2.0 * n**3 / _timed(a, b) / 1e9)
        calls += 1
    return {"gflops": best, "n": n, "calls": calls, "dtype": "float32",
            "blas_threads": _blas_threads(), "numpy": np.__version__}


def measure_peak(threads: int, *, seconds: float = 1.0, python: str | None = None,
                 timeout: float = 120.0) -> dict[str, Any]:
    """Runs :func:`probe` in a child process limited to ``threads`` BLAS threads.

    Returns:
        The probe's figures plus ``threads``, or ``{"error": ...}`` when it could not run.
    """
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    argv = [python or sys.executable, "-m", "edgekit.devices.remote.peak",
            "--seconds", str(seconds)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return {"threads": threads, "error": f"the matmul probe took over {timeout:.0f} s"}
    except (OSError, ValueError, IndexError):
        tail = (done.stderr or "").strip().splitlines()[-1:] if "done" in locals() else []
        return {"threads": threads, "error": f"the matmul probe failed: {' '.join(tail)}"}
    return {"threads": threads, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgekit-peak")
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(probe(seconds=args.seconds)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

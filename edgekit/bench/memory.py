"""Peak resident memory (RSS) of this process around a measured block.

A sampling thread reads the RSS every few milliseconds (psutil), so the figure is the peak
inside the block, not the process's lifetime maximum that ``getrusage`` reports (a benchmark
run after a training job would otherwise report the training job's peak). Without psutil,
``resource.getrusage`` is the fallback and the result says which method measured it.
"""

from __future__ import annotations

import threading
from types import TracebackType


class PeakRss:
    """Context manager measuring the peak RSS (MB) of this process inside its block.

    Example:
        with PeakRss() as mem:
            run()
        print(mem.peak_mb)
    """

    def __init__(self, *, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self.method = "psutil"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = None

    def __enter__(self) -> PeakRss:
        try:
            import psutil

            self._process = psutil.Process()
        except ImportError:
            self.method = "getrusage"
        self.start_mb = self.peak_mb = self._read()
        if self._process is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> float:
        if self._process is not None:
            return self._process.memory_info().rss / 2**20
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes vs KiB

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, self._read())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, self._read())

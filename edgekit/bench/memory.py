"""Peak resident memory (RSS) of this process around a measured block.

On Linux the kernel keeps the process's RSS high-water mark (``VmHWM`` in /proc/self/status)
and resets it on request (writing ``5`` to /proc/self/clear_refs, Linux >= 4.0). That gives
the exact peak inside the block at no cost while it runs. A sampling thread would wake every
few ms beside the timed calls: on a 2-core machine it took CPU and the GIL from the very
inference being timed (edgekit's onnxruntime p50 read about 4% above a plain loop's).

Elsewhere (macOS, a kernel that refuses the reset) a thread samples psutil's RSS every few
milliseconds; without psutil, ``resource.getrusage``'s lifetime maximum is the last resort
(a benchmark run after a training job would report the training job's peak). ``method``
says which one measured.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _high_water_mb() -> float | None:
    """The kernel's RSS high-water mark of this process in MiB, or None where there is none."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_high_water() -> bool:
    """Starts a new high-water mark at the current RSS; False where the kernel refuses."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _high_water_mb() is not None


class PeakRss:
    """Context manager measuring the peak RSS (MB) of this process inside its block.

    Example:
        with PeakRss() as mem:
            run()
        print(mem.peak_mb, mem.method)
    """

    def __init__(self, *, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self.method = "VmHWM"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = None

    def __enter__(self) -> PeakRss:
        if _reset_high_water():
            self.start_mb = self.peak_mb = _high_water_mb() or 0.0
            return self
        try:
            import psutil

            self._process = psutil.Process()
            self.method = "psutil"
        except ImportError:
            self.method = "getrusage"
        self.start_mb = self.peak_mb = self._read()
        if self._process is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> float:
        if self.method == "VmHWM":
            return _high_water_mb() or 0.0
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

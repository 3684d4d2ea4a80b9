"""Whether a run is doing its job: a run whose frames fail must stop and say so.

A manifest that contradicts its model, or a runtime that breaks mid-run, used to make every
frame fail while the run carried on and exited 0 (124 frames in, 0 out, 123 errors). The
pipeline counts every frame that fails and every frame that comes out; :class:`Health` turns
those counts into a verdict.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSettings:
    """When a run counts as failed.

    Attributes:
        max_error_rate: Fraction of frames (failed / (failed + processed)) above which the run
            is unhealthy; 1.0 switches the rate rule off (only "every frame failed" remains).
        window_s: How long the rate must stay above ``max_error_rate`` before the run stops.
            A few bad frames (a corrupt packet) pass; a model that cannot run does not.
    """

    max_error_rate: float = 0.5
    window_s: float = 10.0


class Health:
    """Counts failed frames and decides when the run has failed.

    ``check`` is called on the pipeline's ticks with the total of processed frames; it compares
    the interval since the previous tick. ``final`` is called once at the end.
    """

    def __init__(self, settings: HealthSettings | None = None) -> None:
        self.settings = settings or HealthSettings()
        self._lock = threading.Lock()
        self.errors = 0
        self.first_error: dict[str, Any] | None = None
        self.failure: dict[str, Any] | None = None
        self._last = (0, 0)  # (errors, processed) at the previous check
        self._above_since: float | None = None

    def error(self, camera: str, message: str) -> None:
        """Records one failed frame (or a camera that could not start)."""
        with self._lock:
            self.errors += 1
            if self.first_error is None:
                self.first_error = {"camera": camera, "error": message}

    def check(self, processed: int, now: float | None = None) -> dict[str, Any] | None:
        """Returns the failure once the error rate stayed too high for ``window_s``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            errors = self.errors
        new_errors, new_ok = errors - self._last[0], processed - self._last[1]
        self._last = (errors, processed)
        if new_errors + new_ok == 0:
            return self.failure  # no frame in this interval: the verdict stays as it was
        rate = new_errors / (new_errors + new_ok)
        if rate <= self.settings.max_error_rate:
            self._above_since = None
            return self.failure
        if self._above_since is None:
            self._above_since = now
        if self.failure is None and now - self._above_since >= self.settings.window_s:
            self._fail(f"{rate:.0%} of frames failed for {now - self._above_since:.0f} s "
                       f"(more than {self.settings.max_error_rate:.0%} for "
                       f"{self.settings.window_s:g} s)", errors, processed)
        return self.failure

    def final(self, processed: int) -> dict[str, Any] | None:
        """The verdict at the end: also failed when frames failed and none came out."""
        with self._lock:
            errors = self.errors
        if self.failure is None and errors and not processed:
            self._fail(f"every frame failed ({errors} errors, 0 frames processed)", errors,
                       processed)
        return self.failure

    def _fail(self, reason: str, errors: int, processed: int) -> None:
        self.failure = {"reason": reason, "errors": errors, "frames_out": processed,
                        "first_error": self.first_error}

"""The live probation of a newly swapped model: latency SLO, errors, detections vs the previous.

While the new model runs the pipeline, the previous one (still loaded, kept for the rollback)
runs beside it on every ``shadow_every``-th of the same frames in its own thread, off the live
path: a frame it cannot take at once is skipped, never queued. The verdict compares the two
models' detection counts on exactly the same frames, so an empty street is not a collapse.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.types import Detections

from .config import ProbationConfig
from .hot import Slot


@dataclass
class Verdict:
    """The outcome: ``healthy`` or ``failed`` (``reason`` says which check, with figures)."""

    healthy: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


class Probation:
    """Watches ``candidate`` against ``previous`` until it passes or fails a check."""

    def __init__(self, candidate: Slot, previous: Slot, config: ProbationConfig) -> None:
        self.candidate, self.previous, self.config = candidate, previous, config
        self.started = time.monotonic()
        self.pairs: list[tuple[int, int]] = []  # (new, previous) detections on one frame
        self.shadow_errors = 0
        self._seen = 0
        self._queue: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._shadow, name="probation shadow",
                                        daemon=True)
        self._thread.start()

    def observe(self, slot: Slot, image: np.ndarray, detections: Detections) -> None:
        """Called by the pipeline for every postprocessed frame (cheap: no inference here)."""
        if slot is not self.candidate:
            return
        self._seen += 1
        if self._seen % max(self.config.shadow_every, 1) == 0:
            try:
                self._queue.put_nowait((image, len(detections)))
            except queue.Full:
                pass  # the previous model is still busy: skip, the live path never waits

    def _shadow(self) -> None:
        model = self.previous.model
        while True:
            item = self._queue.get()
            if item is None:
                return
            image, new_count = item
            try:
                tensor, context = model.pre(image)
                old = model.post(model.infer([tensor])[0], context, image.shape)
            except Exception:  # noqa: BLE001 - the reference failing says nothing of the new
                self.shadow_errors += 1
                continue
            with self._lock:
                self.pairs.append((new_count, len(old)))

    def close(self) -> None:
        """Stops the shadow thread (it finishes the frame it holds)."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put_nowait(None)

    def slo_ms(self) -> tuple[float | None, str]:
        """The latency limit and where it comes from."""
        c = self.config
        if c.latency_p99_ms:
            return c.latency_p99_ms, "config"
        if self.candidate.slo_ms:
            return self.candidate.slo_ms, "bundle"
        before = self.previous.latency.summary().get("p99")
        if before:
            return (before * c.latency_ratio + c.latency_slack_ms,
                    f"{c.latency_ratio:g}x the previous p99 + {c.latency_slack_ms:g} ms")
        return None, "none"

    def figures(self) -> dict[str, Any]:
        """What the probation measured so far."""
        new = self.candidate
        with self._lock:
            pairs = list(self.pairs)
        slo, slo_source = self.slo_ms()
        return {"version": new.version, "previous": self.previous.version,
                "frames": new.frames, "seconds": round(time.monotonic() - self.started, 2),
                "errors": new.errors, "latency_p99_ms": new.latency.summary().get("p99"),
                "slo_ms": slo, "slo_source": slo_source, "compared_frames": len(pairs),
                "detections_new": sum(p[0] for p in pairs),
                "detections_previous": sum(p[1] for p in pairs),
                "shadow_errors": self.shadow_errors}

    def check(self) -> Verdict | None:
        """The verdict once one is due, else None (call it periodically)."""
        c, new = self.config, self.candidate
        figures = self.figures()
        elapsed, slo, slo_source = figures["seconds"], figures["slo_ms"], figures["slo_source"]
        latency = {"p99": figures["latency_p99_ms"]} if figures["latency_p99_ms"] else {}
        if new.errors:
            return Verdict(False, f"{new.errors} errors on live frames ({new.last_error})",
                           figures)
        if slo and new.frames >= c.min_frames and latency.get("p99", 0) > slo:
            return Verdict(False, f"inference p99 {latency['p99']:.1f} ms over the SLO "
                                  f"{slo:.1f} ms ({slo_source}) on {new.frames} frames", figures)
        counts = self._counts(figures)
        if counts is not None:
            return counts
        if new.frames >= c.frames or elapsed >= c.seconds:
            if figures["compared_frames"] < c.min_compared:
                figures["note"] = (f"only {figures['compared_frames']} frames compared with the "
                                   "previous model")
            return Verdict(True, f"passed on {new.frames} live frames", figures)
        return None

    def _counts(self, figures: dict[str, Any]) -> Verdict | None:
        c = self.config
        compared, new, old = (figures["compared_frames"], figures["detections_new"],
                              figures["detections_previous"])
        if compared < c.min_compared:
            return None
        same = f"on the same {compared} live frames"
        if old >= c.min_detections and new < c.collapse_ratio * old:
            return Verdict(False, f"detections collapsed: {new} vs {old} by the previous model "
                                  f"{same}", figures)
        if new > c.explode_ratio * max(old, c.min_detections):
            return Verdict(False, f"detections exploded: {new} vs {old} by the previous model "
                                  f"{same}", figures)
        return None

"""Pipeline metrics: latency windows per stage, counters per camera, Prometheus text.

Windows are bounded deques, so a pipeline that runs for days keeps a constant amount of memory
(the percentiles describe the most recent ``WINDOW`` samples).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WINDOW = 4096
PERCENTILES = (50, 90, 99)


class LatencyWindow:
    """The most recent latency samples of one stage, in milliseconds."""

    def __init__(self, size: int = WINDOW) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, ms: float) -> None:
        self._values.append(ms)
        self.count += 1

    def summary(self) -> dict[str, float | int]:
        values = np.fromiter(tuple(self._values), float)
        if values.size == 0:
            return {"count": 0}
        out: dict[str, float | int] = {"count": self.count, "mean": round(float(values.mean()), 3)}
        for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
            out[f"p{p}"] = round(float(v), 3)
        out["max"] = round(float(values.max()), 3)
        return out


@dataclass
class CameraCounters:
    """What the pipeline itself counts for one camera (the source keeps its own stats)."""

    frames_out: int = 0
    dropped: int = 0  # frames the pipeline discarded (a full sink queue on a live camera)
    frame_age: LatencyWindow = field(default_factory=LatencyWindow)
    end_to_end: LatencyWindow = field(default_factory=LatencyWindow)


class Metrics:
    """Thread-safe store of every measurement the pipeline makes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.stages: dict[str, LatencyWindow] = {}
        self.cameras: dict[str, CameraCounters] = {}
        self.sink_errors: dict[str, str] = {}
        self.sink_dropped: dict[str, int] = {}
        self.events: dict[str, int] = {}
        self.batches: dict[int, int] = {}  # images per inference call -> calls

    def stage(self, name: str, ms: float) -> None:
        with self._lock:
            window = self.stages.get(name)
            if window is None:
                window = self.stages[name] = LatencyWindow()
            window.add(ms)

    def camera(self, name: str) -> CameraCounters:
        with self._lock:
            return self.cameras.setdefault(name, CameraCounters())

    def batch(self, size: int) -> None:
        with self._lock:
            self.batches[size] = self.batches.get(size, 0) + 1

    def event(self, kind: str) -> None:
        with self._lock:
            self.events[kind] = self.events.get(kind, 0) + 1

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def summary(self, sources: dict[str, Any]) -> dict[str, Any]:
        """The run so far as plain data; ``sources`` maps camera name -> its Source."""
        elapsed = self.elapsed()
        cameras = {}
        with self._lock:
            for name, source in sources.items():
                c = self.cameras.get(name, CameraCounters())
                s = source.stats
                cameras[name] = {
                    "uri": source.uri, "live": source.live, "status": s.status,
                    "frames_in": s.frames, "frames_out": c.frames_out,
                    "fps_in": round(s.frames / elapsed, 2),
                    "fps_out": round(c.frames_out / elapsed, 2),
                    "dropped": s.dropped + c.dropped, "reconnects": s.reconnects,
                    "reconnect_s": list(s.reconnect_times_s[-20:]), "errors": s.errors,
                    "down_s": s.down_s(),  # without frames after the first one
                    "last_error": s.last_error or None,
                    "frame_age_ms": c.frame_age.summary(),
                    "end_to_end_ms": c.end_to_end.summary(),
                }
            stages = {name: w.summary() for name, w in self.stages.items()}
            totals = {k: sum(c[k] for c in cameras.values())
                      for k in ("frames_in", "frames_out", "dropped", "reconnects", "errors")}
            return {
                "duration_s": round(elapsed, 3),
                **totals,
                "fps_in": round(totals["frames_in"] / elapsed, 2),
                "fps_out": round(totals["frames_out"] / elapsed, 2),
                "stages_ms": stages,
                "frame_age_ms": _merge(c.frame_age for c in self.cameras.values()),
                "end_to_end_ms": _merge(c.end_to_end for c in self.cameras.values()),
                "cameras": cameras,
                "events": dict(self.events),
                "batch_sizes": dict(sorted(self.batches.items())),
                "sink_errors": dict(self.sink_errors),
                "sink_dropped": dict(self.sink_dropped),
            }


def _merge(windows: Any) -> dict[str, float | int]:
    merged = LatencyWindow(size=WINDOW * 8)
    for w in windows:
        for v in tuple(w._values):
            merged.add(v)
    return merged.summary()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def prometheus(summary: dict[str, Any]) -> str:
    """Renders a ``Metrics.summary()`` in the Prometheus text exposition format."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP edgekit_{name} {help_}")
        lines.append(f"# TYPE edgekit_{name} {kind}")
        lines.extend(f"edgekit_{name}{labels} {value}" for labels, value in samples)

    cams = summary["cameras"]
    for key, kind, help_ in (
            ("frames_in", "counter", "Frames captured."),
            ("frames_out", "counter", "Frames fully processed."),
            ("dropped", "counter", "Frames skipped to stay real-time."),
            ("reconnects", "counter", "Stream reconnections."),
            ("errors", "counter", "Open, read or decode failures."),
            ("fps_out", "gauge", "Processed frames per second.")):
        metric(f"{key}_total" if kind == "counter" else key, kind, help_,
               [(f'{{camera="{_label(n)}"}}', c[key]) for n, c in cams.items()])
    for key, help_ in (("frame_age_ms", "Frame age at inference (ms)."),
                       ("end_to_end_ms", "Capture to sink latency (ms).")):
        metric(key, "summary", help_, [
            (f'{{camera="{_label(n)}",quantile="{p / 100}"}}', c[key][f"p{p}"])
            for n, c in cams.items() if c[key].get("count") for p in PERCENTILES])
    metric("stage_latency_ms", "summary", "Latency of each pipeline stage (ms).", [
        (f'{{stage="{_label(s)}",quantile="{p / 100}"}}', w[f"p{p}"])
        for s, w in summary["stages_ms"].items() if w.get("count") for p in PERCENTILES])
    metric("events_total", "counter", "Analytics events.",
           [(f'{{kind="{_label(k)}"}}', v) for k, v in summary["events"].items()])
    service = summary.get("service")
    if service:  # `edgekit serve` (devices/service): which model runs and whether it is trusted
        metric("model_info", "gauge", "The model version running (value 1).",
               [(f'{{version="{_label(str(service.get("version")))}"}}', 1)])
        for key, kind, help_ in (
                ("healthy", "gauge", "1 when the running model passed its checks."),
                ("on_probation", "gauge", "1 while a new model is on probation."),
                ("swaps", "counter", "Model swaps since the service started."),
                ("rollbacks", "counter", "Rollbacks after a failed live probation.")):
            name = f"model_{key}_total" if kind == "counter" else key
            metric(name, kind, help_, [("", int(service.get(key) or 0))])
    return "\n".join(lines) + "\n"

"""A model the pipeline can swap between two frames, without stopping the cameras.

Each frame is bound to the model that was active when it was preprocessed: its tensor, raw
output and context travel with a reference to that slot, so a frame in flight during a swap is
finished by the model that started it and no frame is lost or mixed. The swap itself is one
reference assignment, done after the new model is loaded and warmed beside the old one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.pipeline import LatencyWindow, ModelSettings, StagedModel, staged
from edgekit.types import Detections


@dataclass(eq=False)
class Slot:
    """One loaded model version and what it did on live frames."""

    version: str
    model: StagedModel
    runner: Any = None  # keeps the runtime session alive as long as the slot
    executed_on: str = ""
    slo_ms: float | None = None
    load_s: float = 0.0
    warm_s: float = 0.0
    frames: int = 0
    errors: int = 0
    detections: int = 0
    last_error: str = ""
    latency: LatencyWindow = field(default_factory=lambda: LatencyWindow(1024))
    activated: float | None = None  # perf_counter at the swap
    first_frame: float | None = None  # perf_counter when its first frame was postprocessed


Observer = Callable[[Slot, np.ndarray, Detections], None]


class HotModel(StagedModel):
    """A StagedModel whose active version can be replaced while the pipeline runs."""

    def __init__(self, slot: Slot) -> None:
        super().__init__(pre=self._pre, infer=self._infer, post=self._post,
                         labels=list(slot.model.labels), batch=slot.model.batch,
                         tags=self._tags)
        self.active = slot
        self.observer: Observer | None = None
        self.last_image: np.ndarray | None = None
        self._lock = threading.Lock()
        self.swaps = 0

    def swap(self, slot: Slot) -> Slot:
        """Makes ``slot`` the model of every frame preprocessed from now on; returns the old."""
        if list(slot.model.labels) != self.labels:
            raise ValueError(f"'{slot.version}' has other class names ({slot.model.labels}) "
                             f"than the running model ({self.labels}); the analytics are set up "
                             "for those: restart the service to change them")
        with self._lock:
            old, slot.activated, slot.first_frame = self.active, time.perf_counter(), None
            self.batch = min(self.batch, slot.model.batch) or 1
            self.active = slot
            self.swaps += 1
        return old

    def _pre(self, image: np.ndarray) -> tuple[Any, Any]:
        slot = self.active  # read once: this frame belongs to this slot from here on
        self.last_image = image
        tensor, context = slot.model.pre(image)
        return (slot, tensor), (context, image)

    def _infer(self, inputs: list[tuple[Slot, Any]]) -> list[tuple[Slot, Any]]:
        out: list[tuple[Slot, Any]] = []
        start = 0
        while start < len(inputs):  # consecutive frames of one slot run as one call
            slot = inputs[start][0]
            end = start
            while end < len(inputs) and inputs[end][0] is slot:
                end += 1
            t0 = time.perf_counter()
            try:
                results = slot.model.infer([tensor for _, tensor in inputs[start:end]])
            except Exception as exc:
                slot.errors += end - start
                slot.last_error = f"inference failed: {exc}"
                raise
            slot.latency.add((time.perf_counter() - t0) * 1e3)
            out.extend((slot, r) for r in results)
            start = end
        return out

    def _post(self, output: tuple[Slot, Any], context: Any, shape: tuple[int, ...]) -> Detections:
        slot, raw = output
        inner, image = context
        try:
            detections = slot.model.post(raw, inner, shape)
        except Exception as exc:
            slot.errors += 1
            slot.last_error = f"postprocess failed: {exc}"
            raise
        slot.frames += 1
        slot.detections += len(detections)
        if slot.first_frame is None:
            slot.first_frame = time.perf_counter()
        if self.observer is not None:
            self.observer(slot, image, detections)
        return detections

    @staticmethod
    def _tags(output: tuple[Slot, Any]) -> dict[str, Any]:
        return {"model": output[0].version}


def load_slot(directory: Path, version: str, *, board: str | None = None,
              threads: int | None = None, settings: ModelSettings | None = None,
              warmup: int = 3, image: np.ndarray | None = None) -> Slot:
    """Opens one installed version on this board's runner and warms it on a live frame.

    Raises:
        EdgekitError: the bundle does not load (missing runtime, bad file, wrong board).
    """
    from edgekit.devices.runners import load_runner

    t0 = time.perf_counter()
    runner = load_runner(directory, board=board, threads=threads)
    model = staged(runner, settings=settings or ModelSettings())
    t1 = time.perf_counter()
    spec = runner.detector.manifest.input
    frame = image if image is not None else np.full((spec.height, spec.width, 3), 114,
                                                   np.uint8)
    for _ in range(max(warmup, 1)):  # first calls allocate and pick kernels: not on live frames
        tensor, context = model.pre(frame)
        model.post(model.infer([tensor])[0], context, frame.shape)
    slo = runner.artifact.details.get("latency_slo_ms")
    return Slot(version=version, model=model, runner=runner, executed_on=runner.executed_on,
                slo_ms=float(slo) if slo else None, load_s=t1 - t0,
                warm_s=time.perf_counter() - t1)

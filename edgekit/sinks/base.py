"""What a sink receives, and the interface every sink implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..types import Detections, Frame


@dataclass(slots=True)
class Result:
    """One processed frame: the frame, its (tracked) detections and the analytics events.

    Attributes:
        camera: The camera's name in this pipeline.
        frame: The frame as captured (timestamp_ns is the capture time).
        detections: Detections in the frame's pixels, with tracker ids when tracking runs.
        labels: Class names.
        events: Line crossings and zone enter/exit events of this frame.
        counts: Running analytics totals of this camera (line and zone counts).
        overlay: Draws lines and zones on an image, or None.
        tags: Facts recorded with this frame: the model that produced it (its version), the
            input file's name (`edgekit predict`), or empty.
    """

    camera: str
    frame: Frame
    detections: Detections
    labels: list[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    overlay: Any = None  # callable(image) -> None drawing lines and zones, or None
    tags: dict[str, Any] = field(default_factory=dict)
    _annotated: np.ndarray | None = None

    def annotated(self) -> np.ndarray:
        """The frame with boxes, track ids, lines and zones drawn (computed once, shared)."""
        if self._annotated is None:
            from ..annotate import annotate

            image = annotate(self.frame.image, self.detections, self.labels)
            if self.detections.tracker_id is not None:
                _draw_track_ids(image, self.detections)
            if self.overlay is not None:
                self.overlay(image)
            self._annotated = image
        return self._annotated

    def record(self) -> dict[str, Any]:
        """The JSON-ready record of this frame."""
        return {
            "camera": self.camera, "source": self.frame.source_id, "index": self.frame.index,
            "timestamp_ns": self.frame.timestamp_ns,
            "detections": self.detections.to_records(self.labels), "events": self.events,
            **self.tags,
        }


def _draw_track_ids(image: np.ndarray, detections: Detections) -> None:
    import cv2

    for xyxy, tid in zip(detections.xyxy, detections.tracker_id, strict=True):
        if tid >= 0:
            x1, _, _, y2 = (int(v) for v in xyxy)
            cv2.putText(image, f"#{tid}", (x1 + 2, y2 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 255, 255), 1, cv2.LINE_AA)


class Sink(ABC):
    """Somewhere results go. ``open`` may raise; ``write`` runs in the sink's own thread.

    A sink that raises is reported and switched off; the pipeline and the other sinks go on.
    """

    #: Whether a sink must see every frame of an offline source (files) or may skip (views).
    lossless: bool = True

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.stats_provider: Any = None  # set by the pipeline: () -> summary dict
        self.cameras: list[str] = []  # set by the pipeline before open()
        self.sources: dict[str, Any] = {}  # camera -> its Source, set by the pipeline too

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquires files, sockets or windows. Raises EdgekitError when it cannot."""

    @abstractmethod
    def write(self, result: Result) -> None:
        """Handles one result."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flushes and releases everything."""

    def describe(self) -> str:
        """Where the output is, for the run's summary."""
        return self.uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

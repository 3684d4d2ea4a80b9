"""The data that flows through edgekit: frames in, detections out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One image from a source.

    Attributes:
        image: HxWx3 uint8, BGR (as OpenCV gives it).
        timestamp_ns: Capture time (time.time_ns() clock) of the frame.
        index: Position of the frame in its source, from 0.
        source_id: Which source delivered it (its URI, or a name).
    """

    image: np.ndarray
    timestamp_ns: int
    index: int = 0
    source_id: str = ""


# Where keypoints travel in ``supervision.Detections.data``.
KEYPOINTS_KEY = "keypoints"


def _as(array: Any, dtype: Any, shape_tail: tuple[int, ...]) -> np.ndarray:
    out = np.asarray(array, dtype=dtype)
    return out.reshape((-1, *shape_tail)) if out.size == 0 else out


@dataclass(slots=True)
class Detections:
    """Detections as a struct of arrays, as supervision's ``Detections``.

    Attributes:
        xyxy: float32 [N, 4] boxes in pixels of the original image.
        confidence: float32 [N].
        class_id: int64 [N].
        tracker_id: int64 [N] or None when nothing tracks.
        data: extra per-detection arrays, each of length N.
        keypoints: float32 [N, K, 2] points (x, y) in pixels of the original image, for heads
            that give them (faces: eyes, nose, mouth...); None otherwise. Tracking and zones
            ignore them.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = _as(self.xyxy, np.float32, (4,))
        self.confidence = _as(self.confidence, np.float32, ())
        self.class_id = _as(self.class_id, np.int64, ())
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or len(self.confidence) != n or len(self.class_id) != n:
            raise ValueError(
                f"Detections arrays disagree: xyxy {self.xyxy.shape}, confidence "
                f"{self.confidence.shape}, class_id {self.class_id.shape}"
            )
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, np.float32)
            if self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or \
                    self.keypoints.shape[2] != 2:
                raise ValueError(f"keypoints must be [{n}, K, 2], got {self.keypoints.shape}")

    @classmethod
    def empty(cls) -> Detections:
        """Returns detections with no boxes."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Selects detections by a boolean mask, an index array or a slice."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            None if self.tracker_id is None else self.tracker_id[index],
            {key: value[index] for key, value in self.data.items()},
            None if self.keypoints is None else self.keypoints[index],
        )

    def to_records(self, labels: list[str] | None = None) -> list[dict[str, Any]]:
        """Returns one JSON-ready dict per detection (box rounded to 0.01 pixel)."""
        records = []
        for i in range(len(self)):
            cid = int(self.class_id[i])
            record: dict[str, Any] = {
                "xyxy": [round(float(v), 2) for v in self.xyxy[i]],
                "confidence": round(float(self.confidence[i]), 4),
                "class_id": cid,
            }
            if labels is not None:
                # An id beyond the names (a DETR's extra class column) keeps a name.
                record["label"] = labels[cid] if 0 <= cid < len(labels) else f"class{cid}"
            if self.tracker_id is not None:
                record["tracker_id"] = int(self.tracker_id[i])
            if self.keypoints is not None:
                record["keypoints"] = [[round(float(x), 2), round(float(y), 2)]
                                       for x, y in self.keypoints[i]]
            records.append(record)
        return records

    def to_supervision(self) -> Any:
        """Converts to ``supervision.Detections`` (needs the supervision package)."""
        from .errors import require

        sv = require("supervision", purpose="supervision interop")
        data = {k: v.copy() for k, v in self.data.items()}
        if self.keypoints is not None:
            # supervision keeps per-detection extras in ``data``; its KeyPoints type is a
            # separate object for pose models, so the points ride along under this key.
            data[KEYPOINTS_KEY] = self.keypoints.copy()
        return sv.Detections(
            xyxy=self.xyxy.copy(),
            confidence=self.confidence.copy(),
            class_id=self.class_id.copy(),
            tracker_id=None if self.tracker_id is None else self.tracker_id.copy(),
            data=data,
        )

    @classmethod
    def from_supervision(cls, detections: Any) -> Detections:
        """Builds edgekit detections from ``supervision.Detections``."""
        n = len(detections.xyxy)
        confidence = detections.confidence if detections.confidence is not None else np.ones(n)
        class_id = detections.class_id if detections.class_id is not None else np.zeros(n)
        data = {k: np.asarray(v) for k, v in dict(detections.data).items()}
        keypoints = data.pop(KEYPOINTS_KEY, None)
        return cls(
            detections.xyxy,
            confidence,
            class_id,
            None if detections.tracker_id is None else np.asarray(detections.tracker_id, np.int64),
            data,
            keypoints,
        )

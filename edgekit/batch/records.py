"""The per-frame rows of a batch run, as an Arrow table (one row per processed frame).

A frame without detections still has its row (empty lists), so "each frame exactly once" is a
row count. The video id is not a column of the files: it is the Hive partition
(``video=<id>/``) and comes back as a column when the folder is read as a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..types import Detections


def schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("source", pa.string()),
        ("segment", pa.int32()),
        ("frame", pa.int64()),
        ("timestamp_s", pa.float64()),
        ("boxes", pa.list_(pa.list_(pa.float32(), 4))),
        ("class_id", pa.list_(pa.int32())),
        ("label", pa.list_(pa.string())),
        ("score", pa.list_(pa.float32())),
        ("track_id", pa.list_(pa.int64())),  # null lists when not tracking
    ])


@dataclass(slots=True)
class FrameRows:
    """Collects frames, then builds one table (columns appended, not row dicts)."""

    source: str
    segment: int
    labels: list[str]
    frames: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    detections: list[Detections] = field(default_factory=list)

    def add(self, frame: int, timestamp_s: float, detections: Detections) -> None:
        self.frames.append(frame)
        self.timestamps.append(timestamp_s)
        self.detections.append(detections)

    def table(self) -> Any:
        import pyarrow as pa

        dets = self.detections
        label = np.asarray(self.labels + ["?"], dtype=object)  # "?": an id past the labels
        classes = [d.class_id.astype(np.int32) for d in dets]
        columns = {
            "source": [self.source] * len(dets),
            "segment": [self.segment] * len(dets),
            "frame": self.frames,
            "timestamp_s": self.timestamps,
            "boxes": [d.xyxy.tolist() for d in dets],
            "class_id": classes,
            "label": [label[np.clip(c, -1, len(self.labels))].tolist() for c in classes],
            "score": [d.confidence for d in dets],
            "track_id": [None if d.tracker_id is None else d.tracker_id for d in dets],
        }
        return pa.table(columns, schema=schema())


def detections_from_row(row: dict[str, Any]) -> Detections:
    """Rebuilds Detections from one row read back (for comparisons and re-use)."""
    boxes = np.asarray(row["boxes"] or [], np.float32).reshape(-1, 4)
    track = row.get("track_id")
    return Detections(boxes, np.asarray(row["score"] or [], np.float32),
                      np.asarray(row["class_id"] or [], np.int64),
                      None if track is None else np.asarray(track, np.int64))

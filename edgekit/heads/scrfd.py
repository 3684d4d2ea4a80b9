"""SCRFD (InsightFace): an anchor-free face head with score, box and keypoint maps per stride.

Outputs, per stride 8/16/32: scores [N, 1], box distances [N, 4] and, for the ``_kps``
models, keypoint offsets [N, 10] (a leading batch dimension of 1 may be present). N is the
stride's grid cells times anchors per cell (2 in the published models). Distances and
offsets are in stride units from the cell's top-left corner; scores are already sigmoid.
Outputs are bound by shape (row count gives the stride, last dimension the role), so their
order in the file does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Detections
from .base import STRIDES, Head, ModelFacts, static


def roles(outputs, height: int, width: int) -> list[dict[str, int]] | None:
    """Per stride (8, 16, 32): {"stride", "anchors", "score", "bbox"[, "kps"]} -> index."""
    if len(outputs) not in (6, 9):
        return None
    rows = []
    for info in outputs:
        shape = static(info.shape)
        if shape is None or len(shape) not in (2, 3) or (len(shape) == 3 and shape[0] != 1):
            return None
        rows.append((shape[-2], shape[-1]))
    levels = []
    for stride in STRIDES:
        cells = -(-height // stride) * -(-width // stride)
        mine = {rows[i][1]: i for i in range(len(rows)) if rows[i][0] % cells == 0
                and rows[i][0] // cells in (1, 2) and _unique_level(rows, rows[i][0])}
        if 1 not in mine or 4 not in mine:
            return None
        level = {"stride": stride, "anchors": rows[mine[1]][0] // cells,
                 "score": mine[1], "bbox": mine[4]}
        kps = [d for d in mine if d not in (1, 4)]
        if kps:
            level["kps"] = mine[kps[0]]
        levels.append(level)
    used = {i for level in levels for k, i in level.items() if k not in ("stride", "anchors")}
    return levels if len(used) == len(outputs) else None


def _unique_level(rows, n: int) -> bool:
    return sum(1 for r in rows if r[0] == n) == len(rows) // 3


def centres(height: int, width: int, stride: int, per_cell: int) -> np.ndarray:
    """Cell corners in pixels [N, 2], each repeated ``per_cell`` times, as SCRFD orders rows."""
    fh, fw = -(-height // stride), -(-width // stride)
    ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32) * stride
    return np.repeat(grid, per_cell, axis=0)


class ScrfdHead(Head):
    """Distance boxes and keypoint offsets on the stride-8/16/32 grids, class-agnostic NMS."""

    name = "scrfd"
    summary = "per stride 8/16/32: scores [N,1], box distances [N,4], keypoints [N,10]"
    defaults = {"conf_threshold": 0.5, "iou_threshold": 0.4}
    # InsightFace feeds RGB as (pixel - 127.5) / 128.
    preprocessing = {"mean": (127.5, 127.5, 127.5), "std": (128.0, 128.0, 128.0),
                     "pad_value": 0}
    has_keypoints = True
    knows_classes = True
    labels = ["face"]

    @classmethod
    def match(cls, facts: ModelFacts) -> str | None:
        levels = roles(facts.outputs, facts.height, facts.width)
        if levels is None:
            return None
        kps = "with" if "kps" in levels[0] else "without"
        return (f"{len(facts.outputs)} outputs forming score/box maps on strides 8/16/32 of "
                f"{facts.height}x{facts.width}, {levels[0]['anchors']} anchor(s) per cell, "
                f"{kps} keypoints (SCRFD)")

    def bind(self, outputs) -> None:
        self.levels = roles(outputs, self.height, self.width)
        if self.levels is None:
            raise self.refuse("no score/box(/keypoint) maps on strides 8/16/32 of the input")
        self.num_classes = 1
        kps = self.levels[0].get("kps")
        self.num_keypoints = outputs[kps].shape[-1] // 2 if kps is not None else 0
        self.centres = [centres(self.height, self.width, lv["stride"], lv["anchors"])
                        for lv in self.levels]

    def decode(self, raw: Sequence[np.ndarray], *, conf: float, iou: float) -> Detections:
        boxes, scores, points = [], [], []
        for level, centre in zip(self.levels, self.centres, strict=True):
            score = raw[level["score"]].reshape(-1)
            keep = score > conf
            if not keep.any():
                continue
            step = float(level["stride"])
            dist = raw[level["bbox"]].reshape(-1, 4)[keep] * step
            c = centre[keep]
            boxes.append(np.concatenate([c - dist[:, :2], c + dist[:, 2:]], 1))
            scores.append(score[keep])
            if "kps" in level:
                kps = raw[level["kps"]]
                offsets = kps.reshape(kps.shape[-2], -1, 2)[keep] * step
                points.append(offsets + c[:, None, :])
        if not boxes:
            return Detections.empty()
        xyxy = np.concatenate(boxes).astype(np.float32)
        confidence = np.concatenate(scores).astype(np.float32)
        keypoints = np.concatenate(points).astype(np.float32) if points else None
        return self.finish(xyxy, confidence, np.zeros(len(xyxy), np.int64), iou=iou,
                           keypoints=keypoints)

"""YOLOv5 / YOLOv7 (and YOLOX exported with its decode): one output [1, N, 5 + nc].

Each row is cx, cy, w, h in input pixels, an objectness and one score per class, all
already through the sigmoid; a detection's score is objectness x class score. N is three
anchors per grid cell over strides 8/16/32 (and 64 for the P6 models).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Detections
from .base import STRIDES, STRIDES_P6, Head, ModelFacts, cxcywh_to_xyxy, grid_cells, static


def rows_shape(facts: ModelFacts) -> tuple[int, int] | None:
    """(N, 5 + nc) of a single [1, N, 5 + nc] output, or None."""
    if len(facts.outputs) != 1:
        return None
    shape = static(facts.outputs[0].shape)
    if shape is None or len(shape) != 3 or shape[0] != 1 or not 6 <= shape[2] < shape[1]:
        return None
    if facts.num_classes is not None and shape[2] != 5 + facts.num_classes:
        return None
    return shape[1], shape[2]


class YoloV5Head(Head):
    """cx cy w h (pixels), objectness, class scores per row; score = objectness x class."""

    name = "yolov5"
    summary = "one output [1, N, 5+classes]: cx cy w h in pixels, objectness, class scores"
    knows_classes = True

    @classmethod
    def match(cls, facts: ModelFacts) -> str | None:
        rows = rows_shape(facts)
        if rows is None:
            return None
        for strides in (STRIDES, STRIDES_P6):
            if rows[0] == 3 * grid_cells(facts.height, facts.width, strides):
                return (f"one output [1, {rows[0]}, {rows[1]}]: {rows[0]} rows = 3 anchors per "
                        f"cell on strides {'/'.join(map(str, strides))} of "
                        f"{facts.height}x{facts.width} (YOLOv5/v7 layout), {rows[1] - 5} classes")
        return None

    def bind(self, outputs) -> None:
        if len(outputs) != 1 or len(outputs[0].shape) != 3:
            raise self.refuse("it gives one [1, N, 5+classes] output")
        last = outputs[0].shape[2]
        if isinstance(last, int) and last < 6:
            raise self.refuse("the rows are shorter than 5 + 1 class")
        self.num_classes = last - 5 if isinstance(last, int) else None

    def decode(self, raw: Sequence[np.ndarray], *, conf: float, iou: float) -> Detections:
        pred = raw[0][0]
        if pred.dtype != np.float32:
            pred = pred.astype(np.float32)
        # Objectness first: it drops most rows before the per-class work.
        candidates = pred[pred[:, 4] > conf]
        if not len(candidates):
            return Detections.empty()
        scores = candidates[:, 5:] * candidates[:, 4:5]
        class_id = scores.argmax(1)
        confidence = scores[np.arange(len(scores)), class_id]
        keep = confidence > conf
        xyxy = cxcywh_to_xyxy(candidates[keep, :4])
        return self.finish(xyxy, confidence[keep], class_id[keep], iou=iou)

"""YOLOv8 / YOLO11 (Ultralytics, no NMS in the graph): one output [1, 4 + nc, N]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Detections
from .base import Head, ModelFacts, static, ultralytics_flag


class YoloV8Head(Head):
    """Rows cx, cy, w, h in input pixels, then one sigmoid score per class; anchors last."""

    name = "yolov8"
    summary = "one output [1, 4+classes, N]: cx cy w h in pixels, then class scores"
    knows_classes = True

    @classmethod
    def match(cls, facts: ModelFacts) -> str | None:
        if len(facts.outputs) != 1 or ultralytics_flag(facts.metadata, "end2end"):
            return None
        shape = static(facts.outputs[0].shape)
        if shape is None or len(shape) != 3 or shape[0] != 1 or not 4 < shape[1] < shape[2]:
            return None
        if facts.num_classes is not None and shape[1] != 4 + facts.num_classes:
            return None
        return (f"one output {list(shape)}: {shape[1] - 4} class rows after 4 box rows, "
                f"{shape[2]} anchors last (Ultralytics YOLOv8/11 layout)")

    def bind(self, outputs) -> None:
        if len(outputs) != 1:
            raise self.refuse(f"it gives one output, the model has {len(outputs)}")
        shape = outputs[0].shape
        if len(shape) != 3 or (isinstance(shape[1], int) and shape[1] <= 4):
            raise self.refuse("the output is not [1, 4+classes, N]")
        self.num_classes = shape[1] - 4 if isinstance(shape[1], int) else None

    def decode(self, raw: Sequence[np.ndarray], *, conf: float, iou: float) -> Detections:
        pred = raw[0][0]
        if pred.dtype != np.float32:
            pred = pred.astype(np.float32)
        scores = pred[4:]
        # max over classes first (a contiguous reduction, ~3 us), argmax only for the few
        # anchors above the threshold: argmax over all 2100 anchors costs ~37 us on its own.
        confidence = scores.max(0)
        keep = confidence > conf
        if not keep.any():
            return Detections.empty()
        boxes, confidence = pred[:4, keep].T, confidence[keep]
        class_id = scores[:, keep].argmax(0)
        xyxy = np.empty_like(boxes)
        half = boxes[:, 2:] / 2
        xyxy[:, :2] = boxes[:, :2] - half
        xyxy[:, 2:] = boxes[:, :2] + half
        return self.finish(xyxy, confidence, class_id, iou=iou)

"""Raw head output -> Detections: vectorised decode and class-aware NMS.

One implementation for every backend. It takes the Ultralytics YOLOv8/YOLO11 convention
([1, 4 + num_classes, N], cx cy w h in input pixels, sigmoid scores), so users' own exports
go through the same code as the sample detector.
"""

from __future__ import annotations

import numpy as np

from .bundle import OutputSpec
from .errors import ModelError
from .preprocess import Letterbox
from .types import Detections

# Boxes of different classes are shifted this far apart so one NMS call keeps classes
# separate (the "batched NMS" trick used by torchvision and Ultralytics).
_CLASS_OFFSET = 8192.0


def check_yolo_output(shape: tuple, num_classes: int) -> None:
    """Refuses an output that is not a [1, 4 + num_classes, N] detection head, saying why."""
    if len(shape) != 3 or shape[0] != 1 or shape[1] != 4 + num_classes:
        raise ModelError(
            f"The model's output has shape {list(shape)}; a detection head gives "
            f"[1, {4 + num_classes}, N] (4 box values + {num_classes} class scores).",
            hint="Export a YOLOv8/YOLO11-style detector without NMS, or check the labels count.",
        )


def decode(
    output: np.ndarray, spec: OutputSpec, *, conf: float | None = None, iou: float | None = None
) -> Detections:
    """Decodes one image's raw output into detections in input-tensor pixels."""
    pred = output[0]
    if pred.dtype != np.float32:
        pred = pred.astype(np.float32)
    conf = spec.conf_threshold if conf is None else conf
    iou = spec.iou_threshold if iou is None else iou
    scores = pred[4:]
    # max over classes first (a contiguous reduction, ~3 us), argmax only for the few anchors
    # above the threshold: argmax over all 2100 anchors costs ~37 us on its own.
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
    chosen = nms(xyxy, confidence, class_id, iou)[: spec.max_detections]
    return Detections(xyxy[chosen], confidence[chosen], class_id[chosen])


def nms(xyxy: np.ndarray, confidence: np.ndarray, class_id: np.ndarray, iou: float) -> np.ndarray:
    """Class-aware NMS; returns kept indices, best first.

    OpenCV's C++ NMSBoxes on class-offset boxes: measured faster than a numpy loop at the box
    counts a detector gives (see benchmarks/prepost_latency.py).
    """
    import cv2

    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    shifted = xyxy + (class_id.astype(np.float32) * _CLASS_OFFSET)[:, None]
    xywh = shifted.copy()
    xywh[:, 2:] -= xywh[:, :2]
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), confidence.tolist(), 0.0, float(iou))
    kept = np.asarray(kept, np.int64).reshape(-1)
    return kept[np.argsort(-confidence[kept], kind="stable")]


def postprocess(
    output: np.ndarray,
    spec: OutputSpec,
    box: Letterbox,
    width: int,
    height: int,
    *,
    conf: float | None = None,
    iou: float | None = None,
) -> Detections:
    """Decodes, runs NMS and maps boxes back to the original image of ``width`` x ``height``."""
    detections = decode(output, spec, conf=conf, iou=iou)
    if len(detections):
        detections.xyxy = box.to_original(detections.xyxy, width, height)
    return detections

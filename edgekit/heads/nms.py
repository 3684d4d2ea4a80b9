"""The NMS every head shares: class-aware hard NMS and MediaPipe-style weighted NMS."""

from __future__ import annotations

import numpy as np

# Boxes of different classes are shifted this far apart so one NMS call keeps classes
# separate (the "batched NMS" trick used by torchvision and Ultralytics).
_CLASS_OFFSET = 8192.0


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


def iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """IoU of every pair of [N, 4] xyxy boxes, [N, N]."""
    lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)


def weighted_nms(
    xyxy: np.ndarray, confidence: np.ndarray, keypoints: np.ndarray | None, iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MediaPipe's WEIGHTED suppression: each cluster of overlapping boxes becomes their
    score-weighted mean (box and keypoints), scored by its best member.

    BlazeFace's anchors overlap heavily; averaging the cluster is what MediaPipe's
    TensorsToDetections + NonMaxSuppression calculators do, and it steadies the boxes.

    Returns:
        Boxes [M, 4], confidences [M] and keypoints [M, K, 2] (or None), best first.
    """
    order = np.argsort(-confidence, kind="stable")
    boxes, scores = xyxy[order], confidence[order]
    points = None if keypoints is None else keypoints[order].reshape(len(order), -1)
    # One IoU matrix up front: the loop below then only slices boolean rows (per-pair numpy
    # calls in the loop cost ~0.4 ms each on a loaded 2-core machine).
    overlaps = iou_matrix(boxes) > iou
    out_boxes, out_scores, out_points = [], [], []
    alive = np.ones(len(order), bool)
    for i in np.flatnonzero(alive):
        if not alive[i]:
            continue
        members = alive & overlaps[i]
        members[i] = True
        weights = scores[members] / scores[members].sum()
        out_boxes.append(weights @ boxes[members])
        out_scores.append(scores[i])
        if points is not None:
            out_points.append(weights @ points[members])
        alive &= ~members
    if not out_boxes:
        empty_points = None if keypoints is None else np.zeros((0, *keypoints.shape[1:]),
                                                               np.float32)
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), empty_points
    return (
        np.asarray(out_boxes, np.float32),
        np.asarray(out_scores, np.float32),
        None if points is None else np.asarray(out_points, np.float32).reshape(
            len(out_points), *keypoints.shape[1:]),
    )

"""Draws detections on an image (OpenCV only, so it runs on any board)."""

from __future__ import annotations

import numpy as np

from .types import Detections


def _color(class_id: int) -> tuple[int, int, int]:
    # A fixed, well-spread hue per class so colours stay stable between frames and runs.
    hue = (class_id * 47) % 180
    import cv2

    hsv = np.uint8([[[hue, 220, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def annotate(image: np.ndarray, detections: Detections, labels: list[str]) -> np.ndarray:
    """Returns a copy of a BGR image with boxes, labels, confidences and keypoints drawn."""
    import cv2

    out = image.copy()
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for xyxy, conf, cid in zip(
        detections.xyxy, detections.confidence, detections.class_id, strict=True
    ):
        x1, y1, x2, y2 = (int(round(v)) for v in xyxy)
        color = _color(int(cid))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        name = labels[cid] if 0 <= cid < len(labels) else str(cid)
        text = f"{name} {conf:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = max(y1 - th - base, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), color, -1)
        cv2.putText(
            out, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
    if detections.keypoints is not None:
        radius = max(2, thickness + 1)
        for points, cid in zip(detections.keypoints, detections.class_id, strict=True):
            for x, y in points:
                cv2.circle(out, (int(round(x)), int(round(y))), radius, _color(int(cid) + 7), -1)
    return out

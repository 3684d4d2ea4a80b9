"""MediaPipe BlazeFace: SSD anchors, 4 box + 6 x 2 keypoint values per anchor, one logit.

Outputs: regressors [1, N, 4 + 2K] and scores [1, N, 1]. Boxes and keypoints are offsets in
input pixels from anchor centres that MediaPipe's SsdAnchorsCalculator generates for the
model's input size (fixed-size anchors; consecutive layers of equal stride share one grid).
Scores are logits (sigmoid, clipped at +-100 as MediaPipe does); overlapping detections are
merged by weighted NMS, as MediaPipe's face detection graph does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Detections
from .base import Head, ModelFacts, check_plausible, sigmoid, squeeze_batch, static
from .nms import weighted_nms

# (layer strides, anchors per layer and cell) of MediaPipe's face detection graphs:
# short range 128x128 (896 anchors), back camera 256x256 (896), full range 192x192 (2304).
ANCHOR_CONFIGS: tuple[tuple[tuple[int, ...], int], ...] = (
    ((8, 16, 16, 16), 2),
    ((16, 32, 32, 32), 2),
    ((4,), 1),
)


def anchors(height: int, width: int, strides: Sequence[int], per_layer: int) -> np.ndarray:
    """Anchor centres [N, 2] (x, y) in 0..1, in the order the model's rows follow."""
    out = []
    layer = 0
    while layer < len(strides):
        same = layer
        repeats = 0
        while same < len(strides) and strides[same] == strides[layer]:
            repeats += per_layer
            same += 1
        fh, fw = -(-height // strides[layer]), -(-width // strides[layer])
        ys, xs = np.meshgrid((np.arange(fh) + 0.5) / fh, (np.arange(fw) + 0.5) / fw,
                             indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(grid, repeats, axis=0))
        layer = same
    return np.concatenate(out).astype(np.float32)


def anchors_for(height: int, width: int, count: int) -> np.ndarray | None:
    """The anchor set of a MediaPipe configuration with ``count`` anchors, or None."""
    for strides, per_layer in ANCHOR_CONFIGS:
        found = anchors(height, width, strides, per_layer)
        if len(found) == count:
            return found
    return None


def roles(outputs) -> tuple[int, int] | None:
    """(regressors index, scores index), bound by shape."""
    if len(outputs) != 2:
        return None
    shapes = [static(o.shape) for o in outputs]
    if any(s is None or len(s) != 3 for s in shapes):
        return None
    scores = [i for i, s in enumerate(shapes) if s[2] == 1]
    if len(scores) != 1:
        return None
    reg = 1 - scores[0]
    d = shapes[reg][2]
    if shapes[reg][1] != shapes[scores[0]][1] or d < 4 or (d - 4) % 2:
        return None
    return reg, scores[0]


# What MediaPipe's graphs feed and call the detectors of this family, by keypoint count. Face
# detection (6 keypoints) takes RGB in [-1, 1]; palm detection (7 keypoints) takes RGB in
# [0, 1] (its graph's ImageToTensorCalculator range). Seen on mediapipe 0.10.21's
# palm_detection_lite.tflite: fed [-1, 1] it scored 1.0 on the border of photos without hands.
_FACE = ("face", "BlazeFace", {"mean": (127.5, 127.5, 127.5), "std": (127.5, 127.5, 127.5),
                               "pad_value": 0})
FAMILY = {6: _FACE,
          7: ("palm", "MediaPipe palm detection", {"mean": (0.0, 0.0, 0.0),
                                                   "std": (255.0, 255.0, 255.0),
                                                   "pad_value": 0})}


def member(outputs) -> tuple[str, str, dict]:
    """(label, model name, reference preprocessing) of the family member with these outputs."""
    found = roles(outputs)
    keypoints = (outputs[found[0]].shape[2] - 4) // 2 if found else 6
    return FAMILY.get(keypoints, _FACE)


class BlazeFaceHead(Head):
    """Anchor decode, sigmoid scores, weighted NMS; keypoints [N, K, 2]."""

    name = "blazeface"
    summary = "regressors [1,N,4+2K] + score logits [1,N,1] on MediaPipe SSD anchors"
    defaults = {"conf_threshold": 0.5, "iou_threshold": 0.3}
    # MediaPipe feeds RGB in [-1, 1] (face) or [0, 1] (palm), the image fitted into the
    # square input: see FAMILY.
    preprocessing = _FACE[2]
    has_keypoints = True
    knows_classes = True
    labels = ["face"]

    @classmethod
    def match(cls, facts: ModelFacts) -> str | None:
        found = roles(facts.outputs)
        if found is None:
            return None
        reg, _ = (facts.outputs[i] for i in found)
        n, d = reg.shape[1], reg.shape[2]
        if anchors_for(facts.height, facts.width, n) is None:
            return None
        return (f"regressors {list(reg.shape)} and scores [1, {n}, 1]: {n} = MediaPipe SSD "
                f"anchors for {facts.height}x{facts.width}, {(d - 4) // 2} keypoints "
                f"({member(facts.outputs)[1]})")

    @classmethod
    def preprocessing_for(cls, facts: ModelFacts) -> dict:
        return dict(member(facts.outputs)[2])

    @classmethod
    def labels_for(cls, facts: ModelFacts) -> list[str]:
        return [member(facts.outputs)[0]]

    def bind(self, outputs) -> None:
        found = roles(outputs)
        if found is None:
            raise self.refuse("no regressors [1,N,4+2K] and scores [1,N,1] pair")
        self.reg, self.score = found
        n = outputs[self.reg].shape[1]
        self.anchors = anchors_for(self.height, self.width, n)
        if self.anchors is None:
            raise self.refuse(f"no MediaPipe anchor set for {self.height}x{self.width} has {n} "
                              "anchors")
        self.num_keypoints = (outputs[self.reg].shape[2] - 4) // 2
        self.num_classes = 1
        self.anchor_px = self.anchors * np.array([self.width, self.height], np.float32)

    def decode(self, raw: Sequence[np.ndarray], *, conf: float, iou: float) -> Detections:
        scores = sigmoid(squeeze_batch(raw[self.score]).reshape(-1))
        keep = scores > conf
        if not keep.any():
            return Detections.empty()
        reg = squeeze_batch(raw[self.reg])[keep]
        centre = self.anchor_px[keep]
        xy, half = reg[:, :2] + centre, reg[:, 2:4] / 2
        xyxy = np.concatenate([xy - half, xy + half], 1)
        points = reg[:, 4:].reshape(len(reg), -1, 2) + centre[:, None, :]
        check_plausible(xyxy, scores[keep], self.name)
        boxes, confidence, points = weighted_nms(xyxy, scores[keep], points, iou)
        n = min(len(boxes), self.spec.max_detections)
        return Detections(boxes[:n], confidence[:n], np.zeros(n, np.int64),
                          keypoints=points[:n])

"""Query-based detectors (DETR family): a fixed set of queries, no NMS.

Two layouts, bound by output name and shape, never by position (for three classes RF-DETR's
boxes [1, Q, 4] and logits [1, Q, 4] have the same shape, and exporters order them freely):

- RF-DETR / LW-DETR: boxes [1, Q, 4] normalised cx cy w h, logits [1, Q, C] (sigmoid gives
  the class scores).
- RT-DETR / D-FINE (their deploy exports): labels [1, Q] int, boxes [1, Q, 4] x1 y1 x2 y2 in
  the pixels of an extra ``orig_target_sizes`` input [1, 2] = (width, height), scores [1, Q].
  edgekit feeds the input tensor's own size there, so boxes come back in input pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Detections
from .base import Head, ModelFacts, cxcywh_to_xyxy, sigmoid, squeeze_batch

_BOX_WORDS = ("box", "det", "bbox")
_LOGIT_WORDS = ("logit", "label", "class", "cls", "score")


def _named(name: str, words: Sequence[str]) -> bool:
    low = name.lower()
    return any(word in low for word in words)


def _is_int(info) -> bool:
    return np.issubdtype(np.dtype(info.dtype), np.integer)


def size_input(facts_inputs) -> object | None:
    """RT-DETR's second input (target sizes, [1, 2] ints), or None."""
    for info in facts_inputs:
        if "size" in info.name.lower() or (len(info.shape) == 2 and info.shape[-1] == 2
                                            and _is_int(info)):
            return info
    return None


def target_sizes(height: int, width: int) -> np.ndarray:
    """RT-DETR's ``orig_target_sizes`` for boxes in input pixels: [[width, height]], width
    first, as its postprocessor reads it."""
    return np.array([[width, height]], np.int64)


def rfdetr_roles(outputs) -> tuple[int, int] | None:
    """(boxes index, logits index) of an RF-DETR-style pair, bound by name then shape."""
    if len(outputs) != 2 or any(len(o.shape) != 3 for o in outputs):
        return None
    if outputs[0].shape[1] != outputs[1].shape[1]:
        return None
    by_name = [i for i, o in enumerate(outputs) if _named(o.name, _BOX_WORDS)]
    if len(by_name) == 1:
        return by_name[0], 1 - by_name[0]
    fours = [i for i, o in enumerate(outputs) if o.shape[2] == 4]
    if len(fours) == 1:
        return fours[0], 1 - fours[0]
    return None  # both [1, Q, 4] and unnamed: refusing beats guessing


def rtdetr_roles(outputs) -> tuple[int, int, int] | None:
    """(labels, boxes, scores) indices of an RT-DETR-style triple, bound by name and dtype."""
    if len(outputs) != 3:
        return None
    boxes = [i for i, o in enumerate(outputs) if len(o.shape) == 3 and o.shape[2] == 4]
    flat = [i for i, o in enumerate(outputs) if len(o.shape) == 2]
    if len(boxes) != 1 or len(flat) != 2:
        return None
    labels = [i for i in flat if _is_int(outputs[i])] or [
        i for i in flat if _named(outputs[i].name, ("label", "class"))]
    if len(labels) != 1:
        return None
    scores = [i for i in flat if i != labels[0]][0]
    return labels[0], boxes[0], scores


class DetrHead(Head):
    """RF-DETR (boxes + logits) or RT-DETR/D-FINE (labels + boxes + scores); no NMS."""

    name = "detr"
    summary = ("RF-DETR boxes [1,Q,4] + logits [1,Q,C], or RT-DETR/D-FINE labels [1,Q], "
               "boxes [1,Q,4], scores [1,Q] with an orig_target_sizes input")

    @classmethod
    def match(cls, facts: ModelFacts) -> str | None:
        roles = rtdetr_roles(facts.outputs)
        if roles is not None and size_input(facts.inputs) is not None:
            names = [facts.outputs[i].name for i in roles]
            return (f"three outputs bound as labels '{names[0]}', boxes '{names[1]}', scores "
                    f"'{names[2]}' and a target-size input (RT-DETR/D-FINE deploy layout)")
        pair = rfdetr_roles(facts.outputs)
        if pair is not None:
            boxes, logits = (facts.outputs[i] for i in pair)
            return (f"two query outputs: boxes '{boxes.name}' {list(boxes.shape)} and logits "
                    f"'{logits.name}' {list(logits.shape)} (RF-DETR layout)")
        return None

    @classmethod
    def preprocessing_for(cls, facts: ModelFacts) -> dict:
        # Both resize without keeping the aspect; RT-DETR/D-FINE feed RGB 0..1, RF-DETR
        # normalises with ImageNet's mean and std.
        if rtdetr_roles(facts.outputs) is not None:
            return {"letterbox": False}
        return {"letterbox": False, "mean": (123.675, 116.28, 103.53),
                "std": (58.395, 57.12, 57.375)}

    def bind(self, outputs) -> None:
        self.triple = rtdetr_roles(outputs)
        self.pair = None if self.triple else rfdetr_roles(outputs)
        if self.triple is None and self.pair is None:
            raise self.refuse("no boxes [1,Q,4] + logits pair or labels/boxes/scores triple "
                              "could be bound by name and shape")

    def extra_inputs(self) -> dict[str, np.ndarray]:
        # Filled by the Detector by name.
        return {"orig_target_sizes": target_sizes(self.height, self.width)}

    def decode(self, raw: Sequence[np.ndarray], *, conf: float, iou: float) -> Detections:
        if self.triple is not None:
            labels, boxes, scores = (raw[i] for i in self.triple)
            labels = labels.reshape(-1).astype(np.int64)
            scores = squeeze_batch(scores).reshape(-1)
            xyxy = squeeze_batch(boxes).reshape(-1, 4)
        else:
            boxes, logits = (squeeze_batch(raw[i]) for i in self.pair)
            probs = sigmoid(logits)
            labels = probs.argmax(1)
            scores = probs[np.arange(len(probs)), labels]
            xyxy = cxcywh_to_xyxy(boxes * np.array(
                [self.width, self.height, self.width, self.height], np.float32))
        keep = scores > conf
        return self.finish(xyxy[keep].astype(np.float32), scores[keep], labels[keep], iou=None)

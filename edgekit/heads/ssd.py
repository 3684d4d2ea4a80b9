"""SSD post-processed outputs: TensorFlow's Object Detection API and TFLite's
``TFLite_Detection_PostProcess`` op (SSD-MobileNet, EfficientDet-Lite).

Four outputs: boxes [1, N, 4] as ymin xmin ymax xmax in 0..1, classes [1, N] (float class
ids, 0-based), scores [1, N] and count [1]. Their order differs between exporters (TF1 files
give boxes, classes, scores, count; TF2 SavedModel conversions reorder them), so they are
bound by shape, then by name, then by the op's output index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..types import Detections
from .base import Head, ModelFacts

# TFLite_Detection_PostProcess's documented output order: boxes, classes, scores, count.
_OP_INDEX = re.compile(r"postprocess:(\d)$", re.IGNORECASE)


def ssd_roles(outputs) -> dict[str, int] | None:
    """{"boxes", "classes", "scores", "count"} -> output index, or None."""
    if len(outputs) != 4:
        return None
    boxes = [i for i, o in enumerate(outputs) if len(o.shape) == 3 and o.shape[-1] == 4]
    count = [i for i, o in enumerate(outputs) if len(o.shape) <= 1 or
             (len(o.shape) == 2 and o.shape[-1] == 1 and o.shape[0] == 1 and i not in boxes)]
    pair = [i for i in range(4) if i not in boxes + count]
    if len(boxes) != 1 or len(count) != 1 or len(pair) != 2:
        return None
    roles = {"boxes": boxes[0], "count": count[0]}
    named = {i: outputs[i].name.lower() for i in pair}
    classes = [i for i in pair if "class" in named[i]]
    scores = [i for i in pair if "score" in named[i]]
    if len(classes) == 1 and len(scores) == 1 and classes != scores:
        return {**roles, "classes": classes[0], "scores": scores[0]}
    op = {i: _OP_INDEX.search(named[i]) for i in pair}
    if all(op.values()):
        first, second = sorted(pair, key=lambda i: int(op[i].group(1)))
        return {**roles, "classes": first, "scores": second}
    # Unnamed: told apart per call by their values (class ids are whole numbers).
    return {**roles, "classes": -1, "scores": -1, "pair": pair}


class SsdHead(Head):
    """Already suppressed boxes; this head only scales and thresholds them."""

    name = "ssd"
    summary = ("four outputs: boxes [1,N,4] ymin xmin ymax xmax in 0..1, classes [1,N], "
               "scores [1,N], count [1] (TFLite_Detection_PostProcess)")
    defaults = {"conf_threshold": 0.5}
    # TF's SSD/EfficientDet-Lite files take the frame stretched to the input, RGB; float
    # inputs in [-1, 1] (quantized files take uint8 and ignore mean/std).
    preprocessing = {"letterbox": False, "mean": (127.5, 127.5, 127.5),
                     "std": (127.5, 127.5, 127.5)}

    @classmethod
    def match(cls, facts: ModelFacts) -> str | None:
        roles = ssd_roles(facts.outputs)
        if roles is None:
            return None
        how = "by value" if "pair" in roles else "by name"
        return (f"four outputs: boxes '{facts.outputs[roles['boxes']].name}', count "
                f"'{facts.outputs[roles['count']].name}', classes and scores bound {how} "
                "(TF Object Detection API / TFLite_Detection_PostProcess)")

    def bind(self, outputs) -> None:
        self.roles = ssd_roles(outputs)
        if self.roles is None:
            raise self.refuse("no boxes [1,N,4], classes [1,N], scores [1,N] and count [1]")

    def decode(self, raw: Sequence[np.ndarray], *, conf: float, iou: float) -> Detections:
        roles = self.roles
        boxes = raw[roles["boxes"]].reshape(-1, 4).astype(np.float32)
        if "pair" in roles:
            a, b = (raw[i].reshape(-1) for i in roles["pair"])
            classes, scores = (a, b) if np.all(a == np.round(a)) else (b, a)
        else:
            classes = raw[roles["classes"]].reshape(-1)
            scores = raw[roles["scores"]].reshape(-1)
        count = min(int(np.asarray(raw[roles["count"]]).reshape(-1)[0]), len(boxes))
        boxes, classes = boxes[:count], classes[:count]
        scores = scores[:count].astype(np.float32)
        keep = scores > conf
        scale = np.array([self.height, self.width, self.height, self.width], np.float32)
        yxyx = boxes[keep] * scale
        xyxy = yxyx[:, [1, 0, 3, 2]]
        return self.finish(np.ascontiguousarray(xyxy), scores[keep],
                           classes[keep].astype(np.int64), iou=None)

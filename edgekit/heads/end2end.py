"""NMS-free detectors: one output [1, K, 6] = x1 y1 x2 y2 score class, best K already chosen.

YOLOv10, YOLO26 and Ultralytics exports with ``nms=True`` give this; running NMS again would
only remove true neighbours, so this head only thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Detections
from .base import STRIDES, Head, ModelFacts, grid_cells, static, ultralytics_flag

# Ultralytics' default max_det; end-to-end heads keep at most a few hundred boxes.
_MAX_QUERIES = 1000


class End2EndHead(Head):
    """Rows x1, y1, x2, y2 (input pixels), score, class id; no NMS."""

    name = "end2end"
    summary = "one output [1, K, 6]: x1 y1 x2 y2 score class, already suppressed"

    @classmethod
    def match(cls, facts: ModelFacts) -> str | None:
        if len(facts.outputs) != 1:
            return None
        shape = static(facts.outputs[0].shape)
        if shape is None or len(shape) != 3 or shape[0] != 1 or shape[2] != 6:
            return None
        if ultralytics_flag(facts.metadata, "end2end") or ultralytics_flag(facts.metadata, "nms"):
            return f"one output {list(shape)} and Ultralytics metadata end2end/nms=True"
        # A one-class YOLOv5 also gives [1, N, 6]: its N counts anchors over the grid.
        if shape[1] <= _MAX_QUERIES and shape[1] != 3 * grid_cells(
                facts.height, facts.width, STRIDES):
            return f"one output {list(shape)}: {shape[1]} boxes of x1 y1 x2 y2 score class"
        return None

    @classmethod
    def comparable(cls, output: np.ndarray, reference: np.ndarray, *,
                   score_tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
        """Each reference row beside its nearest output row: YOLO26/YOLOv10 take the top K
        by score in the graph, and near-equal scores (fused vs unfused convs, another
        runtime: 1e-6 apart) come out in either order. Rows within ``score_tol`` of the
        reference's lowest score are left out: such a change may swap them in or out of
        the top K."""
        if output.shape != reference.shape or output.ndim != 3 or output.shape[0] != 1:
            return output, reference
        out, ref = output[0].astype(np.float32), reference[0].astype(np.float32)
        ref = ref[ref[:, 4] > float(ref[:, 4].min()) + score_tol]
        if not len(ref):
            return output[:, :0], reference[:, :0]
        nearest = np.abs(ref[:, None, :] - out[None, :, :]).max(axis=-1).argmin(axis=1)
        return out[nearest][None], ref[None]

    def bind(self, outputs) -> None:
        if len(outputs) != 1 or len(outputs[0].shape) != 3 or outputs[0].shape[2] != 6:
            raise self.refuse("it gives one [1, K, 6] output")

    def decode(self, raw: Sequence[np.ndarray], *, conf: float, iou: float) -> Detections:
        pred = raw[0][0]
        if pred.dtype != np.float32:
            pred = pred.astype(np.float32)
        pred = pred[pred[:, 4] > conf]
        return self.finish(pred[:, :4].copy(), pred[:, 4].copy(),
                           pred[:, 5].astype(np.int64), iou=None)

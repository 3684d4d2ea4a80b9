"""YOLOX: one output [1, N, 5 + nc] with one row per grid cell on strides 8/16/32.

YOLOX's own ONNX export leaves the boxes raw by default (``decode_in_inference=False``):
x, y are offsets from the cell in stride units and w, h are log sizes; objectness and class
scores are already through the sigmoid. ``yolox-decoded`` reads an export made with the
decode, whose rows are cx cy w h in input pixels, as YOLOv5's are.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .base import STRIDES, ModelFacts, grid_cells
from .yolov5 import YoloV5Head, rows_shape

# exp() of a log size beyond this is larger than any input: the rows were not raw offsets.
_MAX_LOG_SIZE = 12.0


def grid(height: int, width: int, strides=STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Cell corners [N, 2] (x, y in cells) and their strides [N, 1], in YOLOX's row order."""
    cells, steps = [], []
    for stride in strides:
        h, w = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], 1))
        steps.append(np.full((h * w, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(steps).astype(np.float32)


class YoloXHead(YoloV5Head):
    """Raw YOLOX rows decoded on the stride-8/16/32 grid, then as YOLOv5."""

    name = "yolox"
    summary = "one output [1, N, 5+classes], one row per cell on strides 8/16/32, raw offsets"
    # YOLOX (0.2 and later) feeds BGR pixels 0..255 unscaled, letterboxed with grey 114.
    preprocessing = {"color": "bgr", "std": (1.0, 1.0, 1.0)}

    @classmethod
    def match(cls, facts: ModelFacts) -> str | None:
        rows = rows_shape(facts)
        if rows is None or rows[0] != grid_cells(facts.height, facts.width, STRIDES):
            return None
        return (f"one output [1, {rows[0]}, {rows[1]}]: one row per cell on strides 8/16/32 of "
                f"{facts.height}x{facts.width} (YOLOX), {rows[1] - 5} classes; raw offsets "
                "assumed (YOLOX's export default), --head yolox-decoded if exported decoded")

    def bind(self, outputs) -> None:
        super().bind(outputs)
        n = outputs[0].shape[1]
        self.cells, self.strides = grid(self.height, self.width)
        if isinstance(n, int) and n != len(self.cells):
            raise self.refuse(f"{n} rows, but the stride-8/16/32 grid of "
                              f"{self.height}x{self.width} has {len(self.cells)} cells")

    def decode(self, raw, *, conf: float, iou: float):
        pred = raw[0][0]
        if pred.dtype != np.float32:
            pred = pred.astype(np.float32)
        keep = pred[:, 4] > conf  # objectness first: only these rows are decoded
        rows = pred[keep]
        if len(rows) and float(rows[:, 2:4].max()) > _MAX_LOG_SIZE:
            raise ModelError(
                f"The 'yolox' head read log box sizes up to {float(rows[:, 2:4].max()):.3g}: "
                "these rows are already decoded to pixels.",
                hint="Use --head yolox-decoded for a YOLOX exported with its decode.",
            )
        steps = self.strides[keep]
        decoded = rows.copy()
        decoded[:, :2] = (rows[:, :2] + self.cells[keep]) * steps
        decoded[:, 2:4] = np.exp(rows[:, 2:4]) * steps
        return super().decode([decoded[None]], conf=conf, iou=iou)


class YoloXDecodedHead(YoloV5Head):
    """A YOLOX export made with ``decode_in_inference=True``: rows already in pixels."""

    name = "yolox-decoded"
    summary = "one output [1, N, 5+classes], one row per cell, cx cy w h already in pixels"
    preprocessing = YoloXHead.preprocessing

    @classmethod
    def match(cls, facts: ModelFacts) -> str | None:
        return None  # indistinguishable from raw YOLOX by shape: chosen only with --head

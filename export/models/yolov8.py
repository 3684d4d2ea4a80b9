"""YoloV8: a YOLOv8n-class detector (3.0 M parameters at 640), edgekit's reference model.

The sample (YoloLite, 447 k parameters at 320) is too small to say anything about INT8 speed or
accuracy at the size users deploy; this network has YOLOv8n's layout and cost, written here
from the published architecture (no Ultralytics code or weights):

- backbone: strided 3x3 convs and C2f blocks (1-2-2-1 bottlenecks at width 0.25), then SPPF;
- neck: FPN top-down + PAN bottom-up with C2f blocks without shortcuts;
- head: decoupled box and class branches per level (strides 8/16/32), anchor-free, with the
  box as a Distribution Focal Loss histogram (``reg_max`` bins per side).

Its output follows the YOLOv8 export convention, ``[B, 4 + num_classes, N]`` (cx, cy, w, h in
input pixels, then sigmoid class scores), so every edgekit backend, the accuracy gate and the
quantizers treat it like a user's own YOLOv8 export. The DFL decode (softmax over bins, then the
expectation) is a Mul + ReduceSum rather than Ultralytics' fixed-weight 1x1 conv: the quantizers
keep everything after the last weighted op in float, and the softmax belongs to that tail.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .yolo_lite import STRIDES, C2f, ConvBNAct, PanDetector
from .yolo_lite import Decode as _SigmoidDecode

__all__ = ["Decode", "SPPF", "YoloV8"]


def _channels(c: int, width: float) -> int:
    return max(8, int(math.ceil(c * width / 8)) * 8)


def _depth(n: int, depth: float) -> int:
    return max(1, round(n * depth))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max pools, concatenated."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNAct(c_in, hidden, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)
        self.cv2 = ConvBNAct(hidden * 4, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Decode(_SigmoidDecode):
    """DFL box histograms + class logits -> ``[B, 4 + nc, N]``.

    Named ``Decode`` like YoloLite's so converters that keep the decode tail float by class
    name (the TFLite INT8 path) find it.
    """

    def __init__(self, num_classes: int, imgsz: int, reg_max: int) -> None:
        super().__init__(num_classes, imgsz)
        self.reg_max = reg_max
        self.cells = int(self.anchors.shape[-1])  # static: reshapes export as constants
        self.register_buffer("bins", torch.arange(reg_max, dtype=torch.float32).view(
            1, 1, reg_max, 1), persistent=False)

    def ltrb(self, box: torch.Tensor) -> torch.Tensor:
        """Expected distances left, top, right, bottom in pixels [B, 4, N] from [B, 4*R, N]."""
        prob = box.reshape(-1, 4, self.reg_max, self.cells).softmax(2)
        return (prob * self.bins).sum(2) * self.strides


class Head(nn.Module):
    """YOLOv8's decoupled head for one level: box (4 x reg_max bins) and class branches."""

    def __init__(self, c_in: int, c_box: int, c_cls: int, num_classes: int,
                 reg_max: int) -> None:
        super().__init__()
        self.box = nn.Sequential(ConvBNAct(c_in, c_box, 3), ConvBNAct(c_box, c_box, 3),
                                 nn.Conv2d(c_box, 4 * reg_max, 1))
        self.cls = nn.Sequential(ConvBNAct(c_in, c_cls, 3), ConvBNAct(c_cls, c_cls, 3),
                                 nn.Conv2d(c_cls, num_classes, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.box(x), self.cls(x)


class YoloV8(PanDetector):
    """YOLOv8-layout detector; the defaults (width 0.25, depth 0.33) are the n size.

    Args:
        num_classes: Number of classes.
        width: Channel multiplier on 64-128-256-512-1024 (0.25: n, 0.5: s).
        depth: Bottleneck-count multiplier on 3-6-6-3 (0.33: n and s).
        reg_max: DFL bins per box side (a side spans at most ``reg_max - 1`` strides).
        imgsz: Square input size the anchor grid is built for (multiple of 32).
    """

    def __init__(self, num_classes: int = 7, *, width: float = 0.25, depth: float = 0.33,
                 reg_max: int = 16, imgsz: int = 640) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width, self.depth, self.reg_max = width, depth, reg_max
        c1, c2, c3, c4, c5 = (_channels(c, width) for c in (64, 128, 256, 512, 1024))
        n1, n2 = _depth(3, depth), _depth(6, depth)
        self.stem = nn.Sequential(ConvBNAct(3, c1, 3, 2), ConvBNAct(c1, c2, 3, 2),
                                  C2f(c2, c2, n1))
        self.stage3 = nn.Sequential(ConvBNAct(c2, c3, 3, 2), C2f(c3, c3, n2))  # stride 8
        self.stage4 = nn.Sequential(ConvBNAct(c3, c4, 3, 2), C2f(c4, c4, n2))  # stride 16
        self.stage5 = nn.Sequential(ConvBNAct(c4, c5, 3, 2), C2f(c5, c5, n1),
                                    SPPF(c5, c5))  # stride 32
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top4 = C2f(c5 + c4, c4, n1, shortcut=False)
        self.top3 = C2f(c4 + c3, c3, n1, shortcut=False)
        self.down3 = ConvBNAct(c3, c3, 3, 2)
        self.out4 = C2f(c3 + c4, c4, n1, shortcut=False)
        self.down4 = ConvBNAct(c4, c4, 3, 2)
        self.out5 = C2f(c4 + c5, c5, n1, shortcut=False)
        c_box = max(16, c3 // 4, 4 * reg_max)
        c_cls = max(c3, min(num_classes, 100))
        self.heads = nn.ModuleList(Head(c, c_box, c_cls, num_classes, reg_max)
                                   for c in (c3, c4, c5))
        self.set_imgsz(imgsz)
        self._init_biases()

    @property
    def box_channels(self) -> int:  # a DFL histogram per side
        return 4 * self.reg_max

    def make_decode(self, imgsz: int) -> nn.Module:
        return Decode(self.num_classes, imgsz, self.reg_max)

    def _init_biases(self) -> None:
        # YOLOv8's priors: box logits 1.0 (a flat histogram, sides of ~reg_max/2 strides);
        # class prior about 5 objects per image over the level's cells at 640.
        for head, stride in zip(self.heads, STRIDES, strict=True):
            nn.init.constant_(head.box[-1].bias, 1.0)
            nn.init.constant_(head.cls[-1].bias,
                              math.log(5 / self.num_classes / (640 / stride) ** 2))

    def config(self) -> dict[str, Any]:
        """The constructor arguments, for checkpoints."""
        return {"num_classes": self.num_classes, "width": self.width, "depth": self.depth,
                "reg_max": self.reg_max, "imgsz": self.imgsz}

    @classmethod
    def from_config(cls, config: dict[str, Any], *, imgsz: int | None = None) -> YoloV8:
        return cls(int(config["num_classes"]), width=float(config["width"]),
                   depth=float(config["depth"]), reg_max=int(config["reg_max"]),
                   imgsz=int(imgsz or config["imgsz"]))

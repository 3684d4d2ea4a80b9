"""YoloLite: a small anchor-free YOLO-style detector, the edgekit sample model.

Its output follows the Ultralytics YOLOv8 export convention, ``[B, 4 + num_classes, N]``: rows
cx, cy, w, h in input pixels, then one sigmoid score per class, so every edgekit backend and
``edgekit.postprocess`` treat it exactly like a user's own YOLOv8/YOLO11 export.

Only export-friendly ops are used (Conv, BatchNorm, SiLU, nearest Upsample x2, Concat, Add,
Mul, Sigmoid, Reshape, Slice) and the anchor grid is a precomputed buffer for the fixed
``imgsz``, so ONNX (opset 17, ``dynamo=False``), OpenVINO and LiteRT see static shapes. The box
decode lives in its own module class, :class:`Decode`, so INT8 quantizers can keep it in float
by module type (one tensor mixing pixel boxes and 0..1 scores does not survive INT8).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["SAMPLE_WEIGHTS", "Decode", "YoloLite", "build_sample_detector", "sample_weights_path"]

STRIDES = (8, 16, 32)
# Box sides are decoded as (BOX_RANGE * sigmoid(x))^2 strides: bounded (no exp overflow while
# training from scratch) and up to 16 strides per side, enough for an object filling the input
# at stride 32.
BOX_RANGE = 4.0


def sample_weights_path() -> Path:
    """Returns where the shipped sample weights live inside the installed ``edgekit`` package."""
    from edgekit.export.shipped import SHIPPED

    return SHIPPED["sample"].weights


SAMPLE_WEIGHTS: Path = sample_weights_path()


class ConvBNAct(nn.Module):
    """Conv2d + BatchNorm2d + SiLU; :meth:`fuse` folds the BN into the conv for export."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Folds BatchNorm into the conv weights (eval statistics); idempotent."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        bn, conv = self.bn, self.conv
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, bias=True).to(conv.weight.device)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv, self.bn = fused, nn.Identity()


class Bottleneck(nn.Module):
    """Two 3x3 convs, with a residual add unless ``shortcut`` is False (YOLOv8's neck)."""

    def __init__(self, c: int, *, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1, self.cv2 = ConvBNAct(c, c, 3), ConvBNAct(c, c, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """YOLOv8's C2f (split, n bottlenecks, concat every stage, 1x1 fuse)."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, *, shortcut: bool = True) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.cv1 = ConvBNAct(c_in, 2 * self.hidden, 1)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden, shortcut=shortcut)
                                    for _ in range(n))
        self.cv2 = ConvBNAct((2 + n) * self.hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        # Slicing rather than torch.chunk: Split lowers unevenly in some converters.
        parts = [y[:, : self.hidden], y[:, self.hidden :]]
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class Decode(nn.Module):
    """Raw head maps -> ``[B, 4 + nc, N]`` (cx, cy, w, h in pixels; sigmoid class scores).

    Kept as its own module type so post-training quantization can leave it in float
    (e.g. PT2E ``set_module_type("edgekit.export.models.yolo_lite.Decode", None)``).
    """

    def __init__(self, num_classes: int, imgsz: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        anchors, strides = make_grid(imgsz)
        # Non-persistent: weights stay independent of imgsz, the grid is rebuilt from it.
        self.register_buffer("anchors", anchors, persistent=False)  # [1, 2, N] pixels
        self.register_buffer("strides", strides, persistent=False)  # [1, 1, N]

    def ltrb(self, box: torch.Tensor) -> torch.Tensor:
        """Distances left, top, right, bottom from each anchor point, in pixels [B, 4, N]."""
        side = torch.sigmoid(box) * BOX_RANGE
        return side * side * self.strides  # Mul, not Pow: friendlier to TFLite and quantizers

    def forward(self, box: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        d = self.ltrb(box)
        lt, rb = d[:, :2], d[:, 2:]
        center = self.anchors + (rb - lt) * 0.5
        return torch.cat((center, lt + rb, torch.sigmoid(cls)), 1)


def make_grid(imgsz: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points (cell centres, pixels) and their strides for a square input, all levels."""
    points, strides = [], []
    for s in STRIDES:
        n = imgsz // s
        c = (torch.arange(n, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        points.append(torch.stack((xx.reshape(-1), yy.reshape(-1))))
        strides.append(torch.full((1, n * n), float(s)))
    return torch.cat(points, 1)[None], torch.cat(strides, 1)[None]


class Head(nn.Module):
    """Decoupled head for one level: a box branch and a class branch."""

    def __init__(self, c_in: int, c_box: int, c_cls: int, num_classes: int) -> None:
        super().__init__()
        self.box = nn.Sequential(ConvBNAct(c_in, c_box, 3), ConvBNAct(c_box, c_box, 3),
                                 nn.Conv2d(c_box, 4, 1))
        self.cls = nn.Sequential(ConvBNAct(c_in, c_cls, 3), ConvBNAct(c_cls, c_cls, 3),
                                 nn.Conv2d(c_cls, num_classes, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.box(x), self.cls(x)


class PanDetector(nn.Module):
    """What the shipped detectors share: a backbone (stem, stage3-5), an FPN+PAN neck (up,
    top4, top3, down3, out4, down4, out5), one head per stride and a ``Decode`` tail.
    Subclasses build those modules and say how many box channels a cell has and how their
    decode is made."""

    box_channels = 4

    def make_decode(self, imgsz: int) -> nn.Module:
        raise NotImplementedError

    def set_imgsz(self, imgsz: int) -> None:
        """Rebuilds the anchor grid for another square input size (the weights do not depend
        on it: training on crops uses this)."""
        if imgsz % STRIDES[-1]:
            raise ValueError(f"imgsz must be a multiple of {STRIDES[-1]}, got {imgsz}.")
        self.imgsz = imgsz
        # Static cell counts per level: reshapes export as constants, with no Shape/Gather ops.
        self.cells = tuple((imgsz // s) ** 2 for s in STRIDES)
        self.decode = self.make_decode(imgsz)

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw box logits [B, box_channels, N] and class logits [B, nc, N] (for training)."""
        p3 = self.stage3(self.stem(x))
        p4 = self.stage4(p3)
        p5 = self.stage5(p4)
        t4 = self.top4(torch.cat((self.up(p5), p4), 1))
        n3 = self.top3(torch.cat((self.up(t4), p3), 1))
        n4 = self.out4(torch.cat((self.down3(n3), t4), 1))
        n5 = self.out5(torch.cat((self.down4(n4), p5), 1))
        boxes, scores = [], []
        for head, feat, cells in zip(self.heads, (n3, n4, n5), self.cells, strict=True):
            b, c = head(feat)
            boxes.append(b.reshape(-1, self.box_channels, cells))
            scores.append(c.reshape(-1, self.num_classes, cells))
        return torch.cat(boxes, 2), torch.cat(scores, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns ``[B, 4 + num_classes, N]`` in the YOLOv8 export convention."""
        return self.decode(*self.forward_raw(x))

    def fuse(self) -> PanDetector:
        """Folds every BatchNorm into its conv (for export/inference); returns self."""
        for module in self.modules():
            if isinstance(module, ConvBNAct):
                module.fuse()
        return self


class YoloLite(PanDetector):
    """Anchor-free detector: C2f backbone, FPN+PAN neck, decoupled heads at strides 8/16/32.

    Args:
        num_classes: Number of classes.
        width: Channel multiplier (1.0: 16-32-64-128-192 backbone).
        imgsz: Square input size the anchor grid is built for (multiple of 32).
    """

    def __init__(self, num_classes: int = 7, *, width: float = 1.0, imgsz: int = 320) -> None:
        super().__init__()
        self.num_classes, self.width = num_classes, width
        c1, c2, c3, c4, c5 = (max(8, int(round(c * width / 8)) * 8)
                              for c in (16, 32, 64, 128, 192))
        self.stem = nn.Sequential(ConvBNAct(3, c1, 3, 2), ConvBNAct(c1, c2, 3, 2), C2f(c2, c2))
        self.stage3 = nn.Sequential(ConvBNAct(c2, c3, 3, 2), C2f(c3, c3))  # stride 8
        self.stage4 = nn.Sequential(ConvBNAct(c3, c4, 3, 2), C2f(c4, c4))  # stride 16
        self.stage5 = nn.Sequential(ConvBNAct(c4, c5, 3, 2), C2f(c5, c5))  # stride 32
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top4 = C2f(c5 + c4, c4)
        self.top3 = C2f(c4 + c3, c3)
        self.down3 = ConvBNAct(c3, c3, 3, 2)
        self.out4 = C2f(c3 + c4, c4)
        self.down4 = ConvBNAct(c4, c4, 3, 2)
        self.out5 = C2f(c4 + c5, c5)
        c_box = max(16, c3 // 2)
        c_cls = max(num_classes, c3 // 2)
        self.heads = nn.ModuleList(Head(c, c_box, c_cls, num_classes) for c in (c3, c4, c5))
        self.set_imgsz(imgsz)
        self._init_biases()

    def make_decode(self, imgsz: int) -> nn.Module:
        return Decode(self.num_classes, imgsz)

    def _init_biases(self) -> None:
        # Class prior 0.01 (focal-loss practice) so early training is not swamped by
        # negatives; box bias 0 gives sides of (BOX_RANGE/2)^2 = 4 strides.
        for head in self.heads:
            nn.init.constant_(head.cls[-1].bias, -math.log((1 - 0.01) / 0.01))
            nn.init.zeros_(head.box[-1].bias)

    def config(self) -> dict[str, Any]:
        """The constructor arguments, for checkpoints."""
        return {"num_classes": self.num_classes, "width": self.width, "imgsz": self.imgsz}

    @classmethod
    def from_config(cls, config: dict[str, Any], *, imgsz: int | None = None) -> YoloLite:
        return cls(int(config["num_classes"]), width=float(config["width"]),
                   imgsz=int(imgsz or config["imgsz"]))


def build_sample_detector(*, imgsz: int | None = None) -> YoloLite:
    """Loads the shipped sample detector (7 road classes, 320x320) in eval mode.

    Raises:
        FileNotFoundError: the weights file is not installed; it names the path and the script
            that produces it.
    """
    from .checkpoint import build_shipped

    return build_shipped("sample", imgsz=imgsz)

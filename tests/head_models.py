"""Tiny torch models, one per output convention, exported to ONNX for the head tests.

Random weights (plumbing only), but each emits exactly its convention's tensors, with the
activations that keep the values in the ranges a real model gives (scores in 0..1, boxes with
area), so every command runs them end to end. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

NC = 3  # classes of the multi-class models


def cells(size: int, strides=(8, 16, 32)) -> int:
    return sum((size // s) ** 2 for s in strides)


class _Tiny(nn.Module):
    """A strided conv, pooled, then a linear layer to ``total`` numbers."""

    def __init__(self, size: int, total: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.size = size
        self.conv = nn.Conv2d(3, 4, 3, stride=8, padding=1)
        self.fc = nn.Linear(4, total)

    def values(self, x: torch.Tensor, *shape: int) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3))).view(1, *shape)

    def cxcywh(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.sigmoid(t[..., :2]) * self.size,
                          torch.sigmoid(t[..., 2:4]) * self.size / 2 + 2], -1)


class YoloV8(_Tiny):
    def __init__(self, size: int) -> None:
        super().__init__(size, cells(size) * (4 + NC))

    def forward(self, x):
        t = self.values(x, cells(self.size), 4 + NC)
        return torch.cat([self.cxcywh(t), torch.sigmoid(t[..., 4:])], -1).transpose(1, 2)


class YoloV5(_Tiny):
    rows = 3

    def __init__(self, size: int) -> None:
        super().__init__(size, self.rows * cells(size) * (5 + NC))

    def forward(self, x):
        t = self.values(x, self.rows * cells(self.size), 5 + NC)
        return torch.cat([self.cxcywh(t), torch.sigmoid(t[..., 4:])], -1)


class YoloX(YoloV5):
    rows = 1

    def forward(self, x):
        t = self.values(x, cells(self.size), 5 + NC)
        return torch.cat([torch.tanh(t[..., :4]), torch.sigmoid(t[..., 4:])], -1)


class End2End(_Tiny):
    def __init__(self, size: int) -> None:
        super().__init__(size, 20 * 6)

    def forward(self, x):
        t = self.values(x, 20, 6)
        x1y1 = torch.sigmoid(t[..., :2]) * self.size / 2
        x2y2 = x1y1 + torch.sigmoid(t[..., 2:4]) * self.size / 2 + 1
        cls = torch.floor(torch.sigmoid(t[..., 5:6]) * NC)
        return torch.cat([x1y1, x2y2, torch.sigmoid(t[..., 4:5]), cls], -1)


class RfDetr(_Tiny):
    def __init__(self, size: int) -> None:
        super().__init__(size, 10 * (4 + NC + 1))

    def forward(self, x):
        t = self.values(x, 10, 4 + NC + 1)
        boxes = torch.cat([torch.sigmoid(t[..., :2]), torch.sigmoid(t[..., 2:4]) / 2 + 0.05], -1)
        return t[..., 4:], boxes  # logits first: binding must go by name


class RtDetr(_Tiny):
    def __init__(self, size: int) -> None:
        super().__init__(size, 10 * (4 + NC))

    def forward(self, x, orig_target_sizes):
        t = self.values(x, 10, 4 + NC)
        x1y1 = torch.sigmoid(t[..., :2]) / 2
        xyxy = torch.cat([x1y1, x1y1 + torch.sigmoid(t[..., 2:4]) / 2 + 0.01], -1)
        boxes = xyxy * orig_target_sizes.repeat(1, 2).unsqueeze(1).float()
        probs = torch.sigmoid(t[..., 4:])
        scores, labels = probs.max(-1)
        return labels, boxes, scores


class Ssd(_Tiny):
    def __init__(self, size: int) -> None:
        super().__init__(size, 10 * 6)

    def forward(self, x):
        t = self.values(x, 10, 6)
        ymin_xmin = torch.sigmoid(t[..., :2]) / 2
        boxes = torch.cat([ymin_xmin, ymin_xmin + torch.sigmoid(t[..., 2:4]) / 2 + 0.01], -1)
        scores = torch.sigmoid(t[..., 4])
        classes = torch.floor(torch.sigmoid(t[..., 5]) * NC)
        count = torch.full((1,), 10.0) + 0 * scores.sum()
        return scores, boxes, count, classes


class BlazeFace(_Tiny):
    anchors = {64: 224, 128: 896}

    def __init__(self, size: int) -> None:
        super().__init__(size, self.anchors[size] * 17)

    def forward(self, x):
        n = self.anchors[self.size]
        t = self.values(x, n, 17)
        offsets = torch.tanh(t[..., :2]) * self.size / 8
        size = torch.sigmoid(t[..., 2:4]) * self.size / 3 + 2
        points = torch.tanh(t[..., 4:16]) * self.size / 8
        return torch.cat([offsets, size, points], -1), t[..., 16:] * 4


class BlazePalm(BlazeFace):
    """MediaPipe palm detection's convention: BlazeFace's, with 7 keypoints (18 values)."""

    def __init__(self, size: int) -> None:
        _Tiny.__init__(self, size, self.anchors[size] * 19)

    def forward(self, x):
        n = self.anchors[self.size]
        t = self.values(x, n, 19)
        offsets = torch.tanh(t[..., :2]) * self.size / 8
        size = torch.sigmoid(t[..., 2:4]) * self.size / 3 + 2
        points = torch.tanh(t[..., 4:18]) * self.size / 8
        return torch.cat([offsets, size, points], -1), t[..., 18:] * 4


class Scrfd(_Tiny):
    def __init__(self, size: int) -> None:
        super().__init__(size, sum(2 * (size // s) ** 2 * 15 for s in (8, 16, 32)))

    def forward(self, x):
        flat = self.values(x, -1)
        scores, boxes, points, start = [], [], [], 0
        for stride in (8, 16, 32):
            n = 2 * (self.size // stride) ** 2
            t = flat[0, start:start + n * 15].view(n, 15)
            start += n * 15
            scores.append(torch.sigmoid(t[:, :1] * 4))
            boxes.append(torch.sigmoid(t[:, 1:5]) * 2 + 0.1)
            points.append(torch.tanh(t[:, 5:]))
        return (*scores, *boxes, *points)


# head -> (model class, input names, output names)
MODELS = {
    "yolov8": (YoloV8, ["images"], ["output0"]),
    "yolov5": (YoloV5, ["images"], ["output0"]),
    "yolox": (YoloX, ["images"], ["output"]),
    "end2end": (End2End, ["images"], ["output0"]),
    "rfdetr": (RfDetr, ["input"], ["labels", "dets"]),
    "rtdetr": (RtDetr, ["images", "orig_target_sizes"], ["labels", "boxes", "scores"]),
    "ssd": (Ssd, ["normalized_input_image_tensor"],
            ["detection_scores", "detection_boxes", "num_detections", "detection_classes"]),
    "blazeface": (BlazeFace, ["input"], ["regressors", "classificators"]),
    "scrfd": (Scrfd, ["input.1"], [f"{r}_{s}" for r in ("score", "bbox", "kps")
                                   for s in (8, 16, 32)]),
}


# Variants of a head's convention that are checked on their own (not every command).
VARIANTS = {"blazepalm": (BlazePalm, ["input"], ["regressors", "classificators"])}


def make_head_onnx(kind: str, path: Path, size: int = 64) -> Path:
    """Exports the tiny model of ``kind`` (a key of MODELS or VARIANTS) to ONNX at ``path``."""
    cls, inputs, outputs = {**MODELS, **VARIANTS}[kind]
    model = cls(size).eval()
    args = (torch.rand(1, 3, size, size),)
    if kind == "rtdetr":
        args += (torch.tensor([[size, size]], dtype=torch.int64),)
    torch.onnx.export(model, args, str(path), input_names=inputs, output_names=outputs,
                      opset_version=17, dynamo=False)
    return path

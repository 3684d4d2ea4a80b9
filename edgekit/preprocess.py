"""Image -> model input, driven only by the manifest's InputSpec.

One implementation serves every backend and the training code, so a model never sees
pixels prepared differently from how it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .bundle import ColorOrder, InputSpec, Layout
from .errors import DatasetError


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an original image maps into the input tensor: ``input = original * scale + pad``."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_original(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        """Maps boxes in input pixels back to the original image, clipped to it."""
        out = np.empty_like(xyxy)
        out[:, 0::2] = (xyxy[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (xyxy[:, 1::2] - self.pad_y) / self.scale_y
        np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
        return out

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        """Maps keypoints [N, K, 2] in input pixels back to the original image (not clipped:
        a face's ear may lie outside the frame)."""
        out = np.empty_like(points)
        out[..., 0] = (points[..., 0] - self.pad_x) / self.scale_x
        out[..., 1] = (points[..., 1] - self.pad_y) / self.scale_y
        return out


def resize_image(image: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Letterbox]:
    """Resizes (letterboxed when the spec says so) a BGR uint8 image to the input size."""
    check_image(image)
    h, w = image.shape[:2]
    th, tw = spec.height, spec.width
    if not spec.letterbox:
        resized = cv2.resize(image, (tw, th), interpolation=cv2.INTER_LINEAR)
        return resized, Letterbox(tw / w, th / h, 0.0, 0.0)
    scale = min(th / h, tw / w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # Same split of the padding as Ultralytics (half each side, the odd pixel at the end), so
    # users' own YOLOv8/11 exports see what they were trained on.
    left, top = round((tw - nw) / 2 - 0.1), round((th - nh) / 2 - 0.1)
    resized = (
        image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    )
    pad = spec.pad_value
    canvas = cv2.copyMakeBorder(
        resized,
        top,
        th - nh - top,
        left,
        tw - nw - left,
        cv2.BORDER_CONSTANT,
        value=(pad, pad, pad),
    )
    return canvas, Letterbox(nw / w, nh / h, float(left), float(top))


def to_tensor(resized: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Turns a resized BGR uint8 image into the model's input tensor (batch of one)."""
    rgb = spec.color is ColorOrder.RGB
    if (spec.layout is Layout.NCHW and spec.dtype == "float32" and len(set(spec.std)) == 1
            and not any(spec.mean)):
        # The usual detector input (x / 255, no mean): cv2.split's three contiguous planes,
        # each scaled by numpy straight into its slot of the tensor: 0.59 ms against 1.0 ms for
        # blobFromImage at 640x640, bit-identical (benchmarks/prepost_latency.py).
        tensor = np.empty((1, 3, *resized.shape[:2]), np.float32)
        planes = cv2.split(resized)
        scale = np.float32(1.0 / spec.std[0])
        for channel, plane in enumerate(planes[::-1] if rgb else planes):
            np.multiply(plane, scale, out=tensor[0, channel], casting="unsafe")
        return tensor
    if spec.layout is Layout.NCHW and spec.dtype == "float32" and len(set(spec.std)) == 1:
        # OpenCV's C++ blob does swap, mean, scale and HWC->CHW in one pass: 0.24 ms against
        # 0.66 ms for the numpy path at 320x320 (benchmarks/prepost_latency.py), identical
        # values. Its mean is given in the output channel order, as the spec's is.
        return cv2.dnn.blobFromImage(resized, 1.0 / spec.std[0], mean=spec.mean, swapRB=rgb)
    image = resized[..., ::-1] if rgb else resized
    if spec.dtype == "uint8":
        tensor = np.ascontiguousarray(image)
    else:
        mean = np.asarray(spec.mean, np.float32)
        inv_std = 1.0 / np.asarray(spec.std, np.float32)
        tensor = (image.astype(np.float32) - mean) * inv_std
    if spec.layout is Layout.NCHW:
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[None], dtype=spec.dtype)


def preprocess(image: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Letterbox]:
    """Returns the input tensor for one BGR image and the letterbox to map boxes back."""
    resized, box = resize_image(image, spec)
    return to_tensor(resized, spec), box


def check_image(image: np.ndarray) -> None:
    """Refuses anything that is not an HxWx3 uint8 image, saying what it got."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise DatasetError(
            f"Expected an HxWx3 BGR image, got {shape}.",
            hint="Convert grey or RGBA images to 3-channel BGR (cv2.cvtColor) first.",
        )
    if image.dtype != np.uint8:
        raise DatasetError(f"Expected a uint8 image, got {image.dtype}.")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DatasetError("Got an empty image (0 pixels).")

"""Raw outputs -> Detections in the original image: the manifest's head, then the letterbox.

One implementation for every backend and every command. The decoding itself lives in the
head registry (``edgekit.heads``); this module maps the result back to the original image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .bundle import InputSpec, OutputSpec
from .errors import ModelError
from .heads.base import Head
from .heads.nms import nms
from .preprocess import Letterbox
from .types import Detections

__all__ = ["check_yolo_output", "decode", "head_for_arrays", "nms", "postprocess"]


def check_yolo_output(shape: tuple, num_classes: int) -> None:
    """Refuses an output that is not a [1, 4 + num_classes, N] YOLOv8 head, saying why."""
    if len(shape) != 3 or shape[0] != 1 or shape[1] != 4 + num_classes:
        raise ModelError(
            f"The model's output has shape {list(shape)}; a YOLOv8-style detection head gives "
            f"[1, {4 + num_classes}, N] (4 box values + {num_classes} class scores).",
            hint="Export a YOLOv8/YOLO11-style detector without NMS, check the labels count, "
            "or name the model's convention with --head.",
        )


def head_for_arrays(
    outputs: Sequence[np.ndarray], spec: OutputSpec, input: InputSpec | None = None
) -> Head:
    """A head bound on raw arrays (names unknown): for callers without a loaded backend."""
    from .backends.base import TensorInfo
    from .heads import make_head

    infos = [TensorInfo(f"output{i}", tuple(a.shape), a.dtype) for i, a in enumerate(outputs)]
    return make_head(spec.kind, spec, input or InputSpec(), infos)


def _as_list(output: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    return [output] if isinstance(output, np.ndarray) else list(output)


def decode(
    output: np.ndarray | Sequence[np.ndarray],
    spec: OutputSpec,
    *,
    conf: float | None = None,
    iou: float | None = None,
    head: Head | None = None,
) -> Detections:
    """Decodes one image's raw output(s) into detections in input-tensor pixels."""
    outputs = _as_list(output)
    head = head or head_for_arrays(outputs, spec)
    return head.decode(
        outputs,
        conf=spec.conf_threshold if conf is None else conf,
        iou=spec.iou_threshold if iou is None else iou,
    )


def postprocess(
    output: np.ndarray | Sequence[np.ndarray],
    spec: OutputSpec,
    box: Letterbox,
    width: int,
    height: int,
    *,
    conf: float | None = None,
    iou: float | None = None,
    head: Head | None = None,
) -> Detections:
    """Decodes, runs NMS and maps boxes (and keypoints) back to the ``width`` x ``height``
    original image."""
    detections = decode(output, spec, conf=conf, iou=iou, head=head)
    if len(detections):
        detections.xyxy = box.to_original(detections.xyxy, width, height)
        if detections.keypoints is not None:
            detections.keypoints = box.points_to_original(detections.keypoints)
        # A box wholly in the letterbox padding clips to zero area: nothing of it is in the
        # image, and a zero-area box matches nothing (seen with BlazeFace's edge anchors).
        inside = (detections.xyxy[:, 2] > detections.xyxy[:, 0]) & (
            detections.xyxy[:, 3] > detections.xyxy[:, 1])
        if not inside.all():
            detections = detections[inside]
    return detections

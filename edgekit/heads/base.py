"""What every head shares: the facts recognition reads, the Head interface, the sanity checks.

A head turns a model's raw outputs into ``Detections`` in input-tensor pixels. It binds its
outputs once, from the names and shapes the runtime reports (never from their position alone:
exporters reorder outputs), and refuses a model that does not fit it, saying what it saw.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import ModelError
from ..types import Detections
from .nms import nms

if TYPE_CHECKING:
    from ..backends.base import TensorInfo
    from ..bundle import InputSpec, OutputSpec

# YOLO-family feature strides: P3-P5, and P3-P6 for the "6" models at 1280.
STRIDES = (8, 16, 32)
STRIDES_P6 = (8, 16, 32, 64)
# More than this share of zero-area boxes among the candidates is not a detector's output.
_ZERO_AREA_SHARE = 0.5


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    """What recognition sees of a model: its tensors, metadata and input size.

    Attributes:
        inputs: The model's inputs as the runtime reports them.
        outputs: The model's outputs as the runtime reports them.
        metadata: Key/value metadata in the file (Ultralytics writes names, imgsz, task...).
        height: Input height in pixels.
        width: Input width in pixels.
        num_classes: Class count known from metadata or the user, if any.
    """

    inputs: Sequence[TensorInfo]
    outputs: Sequence[TensorInfo]
    metadata: dict[str, Any] = field(default_factory=dict)
    height: int = 0
    width: int = 0
    num_classes: int | None = None


def static(shape: Sequence[Any]) -> tuple[int, ...] | None:
    """The shape as ints, or None when a dimension is dynamic."""
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    return tuple(int(d) for d in shape)


def grid_cells(height: int, width: int, strides: Sequence[int]) -> int:
    """Number of grid cells over all strides (ceil division, as strided convolutions give)."""
    return sum(-(-height // s) * -(-width // s) for s in strides)


def describe(outputs: Sequence[TensorInfo]) -> str:
    """The outputs as ``name [shape] dtype``, for error messages."""
    return ", ".join(
        f"'{o.name}' {list(o.shape)} {np.dtype(o.dtype).name}" for o in outputs
    ) or "none"


class Head(ABC):
    """One output convention.

    Subclasses set ``name`` and ``summary``, implement ``match`` (recognition), ``bind`` (done
    once, from the output infos) and ``decode`` (per image).

    Args:
        spec: The manifest's output spec (thresholds, options).
        input: The manifest's input spec (the tensor size boxes are measured in).
        outputs: The model's outputs as the runtime reports them.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    # Output-spec defaults this convention's reference implementation uses.
    defaults: ClassVar[dict[str, Any]] = {}
    # Input-spec fields of the convention's reference preprocessing (used when the file's
    # metadata is silent and the user gave no flags).
    preprocessing: ClassVar[dict[str, Any]] = {}
    # Whether the outputs' shapes give the class count (a row per class, or one class).
    knows_classes: ClassVar[bool] = False
    # Set by ``bind`` where the outputs tell them.
    num_classes: int | None = None
    num_keypoints: int = 0

    @classmethod
    def comparable(cls, output: np.ndarray, reference: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The first raw output and its reference, arranged so that position-wise
        differences measure the model (parity, golden replay). As they are, by default."""
        return output, reference

    def __init__(self, spec: OutputSpec, input: InputSpec, outputs: Sequence[TensorInfo]) -> None:
        self.spec = spec
        self.input = input
        self.height, self.width = input.height, input.width
        self.outputs = list(outputs)
        self.bind(self.outputs)

    @classmethod
    @abstractmethod
    def match(cls, facts: ModelFacts) -> str | None:
        """Why this head fits the model (one sentence), or None when it does not."""

    @classmethod
    def preprocessing_for(cls, facts: ModelFacts) -> dict[str, Any]:
        """Input-spec fields this convention's reference implementation feeds."""
        return dict(cls.preprocessing)

    @classmethod
    def labels_for(cls, facts: ModelFacts) -> list[str] | None:
        """Class names the convention implies when the file names none (a face detector's
        "face"), else None."""
        labels = getattr(cls, "labels", None)
        return list(labels) if labels else None

    @abstractmethod
    def bind(self, outputs: list[TensorInfo]) -> None:
        """Finds each output's role; raises ModelError when the model does not fit."""

    @abstractmethod
    def decode(self, raw: Sequence[np.ndarray], *, conf: float, iou: float) -> Detections:
        """One image's raw outputs -> detections in input-tensor pixels."""

    def extra_inputs(self) -> dict[str, np.ndarray]:
        """Inputs besides the image this convention needs (RT-DETR's target sizes)."""
        return {}

    def refuse(self, why: str) -> ModelError:
        """The error for a model whose outputs do not fit this head."""
        return ModelError(
            f"The outputs do not fit the '{self.name}' head ({self.summary}): {why}. "
            f"Outputs seen: {describe(self.outputs)}.",
            hint="Drop --head to let edgekit recognise the convention, or name another "
            "(`edgekit info --heads` lists them).",
        )

    def finish(
        self,
        xyxy: np.ndarray,
        scores: np.ndarray,
        class_id: np.ndarray,
        *,
        iou: float | None,
        keypoints: np.ndarray | None = None,
    ) -> Detections:
        """Checks candidates are numerically possible, runs NMS (unless ``iou`` is None)."""
        check_plausible(xyxy, scores, self.name)
        if iou is not None and len(xyxy):
            kept = nms(xyxy, scores, class_id, iou)[: self.spec.max_detections]
        else:
            kept = np.argsort(-scores, kind="stable")[: self.spec.max_detections]
        return Detections(
            xyxy[kept], scores[kept], class_id[kept],
            keypoints=None if keypoints is None else keypoints[kept],
        )


def check_plausible(xyxy: np.ndarray, scores: np.ndarray, head: str) -> None:
    """Refuses output no detector gives: scores outside 0..1, NaNs, zero-area boxes en masse.

    This is what turns a misread convention (BlazeFace read as YOLOv8 gave confidence 196.9
    and zero-height boxes) into an error instead of a result.
    """
    if not len(scores):
        return
    hint = ("The model's outputs do not follow this convention: pick the right one with "
            "--head (`edgekit info --heads` lists them), or check the export.")
    if not np.isfinite(scores).all() or not np.isfinite(xyxy).all():
        raise ModelError(f"The '{head}' head decoded NaN or infinite values.", hint=hint)
    low, high = float(scores.min()), float(scores.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise ModelError(
            f"The '{head}' head decoded scores in [{low:.3g}, {high:.3g}]; after its "
            "activation a score lies in 0..1.",
            hint=hint,
        )
    flat = (xyxy[:, 2] <= xyxy[:, 0]) | (xyxy[:, 3] <= xyxy[:, 1])
    if len(flat) >= 4 and flat.mean() > _ZERO_AREA_SHARE:
        raise ModelError(
            f"The '{head}' head decoded {int(flat.sum())} of {len(flat)} candidate boxes with "
            "zero or negative area.",
            hint=hint,
        )


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, clipped as MediaPipe does so exp never overflows."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -100.0, 100.0)))


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] centre/size boxes -> corners."""
    out = np.empty_like(boxes)
    half = boxes[:, 2:4] / 2
    out[:, :2] = boxes[:, :2] - half
    out[:, 2:] = boxes[:, :2] + half
    return out


def squeeze_batch(array: np.ndarray) -> np.ndarray:
    """Drops a leading batch dimension of 1, casting to float32 where needed."""
    out = array[0] if array.ndim >= 2 and array.shape[0] == 1 else array
    return out if out.dtype == np.float32 else out.astype(np.float32)


def ultralytics_flag(metadata: dict[str, Any], key: str) -> bool:
    """A boolean Ultralytics writes into ONNX metadata as text (``end2end``, ``nms``...)."""
    value = metadata.get(key)
    if value is None and isinstance(metadata.get("args"), dict):
        value = metadata["args"].get(key)
    return str(value).lower() in ("true", "1")

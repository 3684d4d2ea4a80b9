"""The model as three stages the pipeline can overlap: preprocess, inference, postprocess.

A ``Detector`` splits into its three parts, so preprocessing of the next frame runs while the
current one is in the runtime. Anything else callable as ``image -> Detections`` (a board
runner from ``edgekit.devices.runners``, a user's own model) runs whole in the inference stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analytics.config import tracking_thresholds
from ..types import Detections


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSettings:
    """Thresholds applied in postprocessing (None: the bundle's own).

    ``track_conf``: decode boxes down to this score for the tracker (the analytics config's
    ``tracker.detection_conf``, which the pipeline sets here); those under ``conf`` that no
    track takes are dropped after tracking.
    """

    conf: float | None = None
    iou: float | None = None
    track_conf: float | None = None


class StagedModel:
    """A detector cut into pre / infer / post so the pipeline can overlap them.

    Args:
        pre: image -> (input, context).
        infer: list of inputs -> list of raw outputs (one per input).
        post: (raw output, context, image shape) -> Detections.
        labels: Class names.
        batch: How many inputs one ``infer`` call may take (1 for static-batch models).
        tags: raw output -> facts stamped on that frame's result and events (a hot-swapped
            model's version, devices/service); None stamps nothing.
        conf: The score threshold detections are reported at, where ``post`` decodes lower
            for a tracker (``ModelSettings.track_conf``); None: ``post`` applies its own.
    """

    def __init__(self, *, pre: Callable[[np.ndarray], tuple[Any, Any]],
                 infer: Callable[[list[Any]], list[Any]],
                 post: Callable[[Any, Any, tuple[int, ...]], Detections],
                 labels: list[str], batch: int = 1,
                 tags: Callable[[Any], dict[str, Any]] | None = None,
                 conf: float | None = None) -> None:
        self.pre, self.infer, self.post = pre, infer, post
        self.labels = labels
        self.batch = batch
        self.tags = tags
        self.conf = conf


def staged(model: Any, *, settings: ModelSettings | None = None,
           labels: list[str] | None = None) -> StagedModel:
    """Turns a Detector, a StagedModel or an ``image -> Detections`` callable into stages."""
    settings = settings or ModelSettings()
    if isinstance(model, StagedModel):
        return model
    if hasattr(model, "backend") and hasattr(model, "manifest"):
        return _from_detector(model, settings)
    inner = getattr(model, "detector", None)  # a board Runner wraps a Detector: split that
    if inner is not None and hasattr(inner, "backend") and hasattr(inner, "manifest"):
        return _from_detector(inner, settings)
    if not callable(model):
        raise TypeError(f"Expected a Detector or a callable image -> Detections, got {model!r}")
    names = labels or list(getattr(model, "labels", []) or [])

    def infer(images: list[np.ndarray]) -> list[Detections]:
        return [model(image) for image in images]

    return StagedModel(pre=lambda image: (image, None), infer=infer,
                       post=lambda out, _ctx, _shape: out, labels=names)


def _from_detector(detector: Any, settings: ModelSettings) -> StagedModel:
    from ..postprocess import postprocess
    from ..preprocess import preprocess

    manifest = detector.manifest
    batch_dim = detector.backend.inputs[0].shape[0] if detector.backend.inputs[0].shape else 1
    # A dynamic batch dimension (a name or None) lets several cameras share one inference call.
    batch = 8 if not isinstance(batch_dim, int) or batch_dim <= 0 else batch_dim
    if len(detector.backend.inputs) > 1:
        batch = 1  # extra inputs (RT-DETR's target sizes) are sized for one image

    def pre(image: np.ndarray) -> tuple[np.ndarray, Any]:
        return preprocess(image, manifest.input)

    feed = getattr(detector, "feed", None) or (lambda tensor: [tensor])
    # Inference runs beside the pipeline's other threads: the backend's setting for that
    # (onnxruntime's threads sleep instead of spinning), not the one for calls alone.
    backend = detector.backend.beside_other_work()

    def infer(tensors: list[np.ndarray]) -> list[list[np.ndarray]]:
        if len(tensors) == 1:
            return [backend.run(feed(tensors[0]))]
        outputs = backend.run(feed(np.concatenate(tensors, axis=0)))
        return [[out[i:i + 1] for out in outputs] for i in range(len(tensors))]

    lowest, report = tracking_thresholds(
        manifest.output.conf_threshold if settings.conf is None else settings.conf,
        settings.track_conf)

    def post(outputs: list[np.ndarray], box: Any, shape: tuple[int, ...]) -> Detections:
        return postprocess(outputs, manifest.output, box, shape[1], shape[0],
                           conf=lowest, iou=settings.iou, head=detector.head)

    return StagedModel(pre=pre, infer=infer, post=post, labels=list(detector.labels),
                       batch=batch, conf=report)

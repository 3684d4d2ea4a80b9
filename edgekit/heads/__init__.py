"""Heads: the output conventions a detector's raw outputs follow, chosen through a registry.

The third registry axis beside backends and boards. Each entry is a lazy ``"module:Class"``
string; every head module needs only numpy (and OpenCV's NMS), so loading them all for
recognition is cheap.

Example:
    choice = recognise(ModelFacts(inputs=..., outputs=..., height=640, width=640))
    head = make_head(choice.name, output_spec, input_spec, backend.outputs)
    detections = head.decode(raw_outputs, conf=0.25, iou=0.45)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ModelError
from ..registry import Registry
from .base import Head, ModelFacts, describe

HEADS: Registry[type[Head]] = Registry(
    "head",
    {
        "yolov8": "edgekit.heads.yolov8:YoloV8Head",
        "yolov5": "edgekit.heads.yolov5:YoloV5Head",
        "end2end": "edgekit.heads.end2end:End2EndHead",
        "yolox": "edgekit.heads.yolox:YoloXHead",
        "yolox-decoded": "edgekit.heads.yolox:YoloXDecodedHead",
        "detr": "edgekit.heads.detr:DetrHead",
        "ssd": "edgekit.heads.ssd:SsdHead",
        "blazeface": "edgekit.heads.blazeface:BlazeFaceHead",
        "scrfd": "edgekit.heads.scrfd:ScrfdHead",
    },
)


@dataclass(frozen=True, slots=True)
class HeadChoice:
    """Which head was chosen and why (printed by every command, stored in the manifest)."""

    name: str
    reason: str


def recognise(facts: ModelFacts, *, name: str | None = None,
              named_by: str = "named with --head") -> HeadChoice:
    """Recognises the output convention from the model's outputs and metadata.

    Args:
        facts: The model's tensors, metadata and input size.
        name: A head the user named (``--head``): it wins, and is checked against the outputs.
        named_by: Who named it, for the reason printed (the user, or the source model).

    Raises:
        ModelError: no head fits (the error lists the outputs seen and the heads supported),
            or several fit and the outputs cannot tell them apart.
    """
    if name is not None:
        HEADS.target(name)  # unknown names fail listing the valid ones
        return HeadChoice(name, named_by)
    found = [(n, r) for n in HEADS if (r := HEADS.load(n).match(facts))]
    if len(found) == 1:
        return HeadChoice(*found[0])
    seen = describe(facts.outputs)
    if not found:
        raise ModelError(
            f"No detection head edgekit knows fits this model's outputs: {seen} "
            f"(input {facts.height}x{facts.width}).",
            hint=f"Heads supported: {supported()}. If the model follows one of them, name it "
            "with --head; segmentation, pose-only and text models are not detectors edgekit "
            "runs.",
        )
    raise ModelError(
        f"The outputs {seen} fit several heads: "
        + "; ".join(f"{n} ({r})" for n, r in found) + ".",
        hint="Name the right one with --head.",
    )


def make_head(name: str, spec, input, outputs: Sequence) -> Head:
    """Builds and binds a head on a model's outputs (``spec``/``input``: the manifest's)."""
    return HEADS.load(name)(spec, input, outputs)


def check_class_count(head: Head, labels: Sequence[str]) -> None:
    """Refuses labels whose count contradicts the head's outputs (a misread class count is
    how garbage passed as detections)."""
    if head.num_classes is not None and head.num_classes != len(labels):
        raise ModelError(
            f"The '{head.name}' head of this model gives {head.num_classes} classes, the "
            f"labels name {len(labels)}.",
            hint="Give the model's own class names in its order (--labels), check the labels "
            "count, or re-export the bundle.",
        )


def supported() -> str:
    """Each registered head with its one-line layout, for help texts and errors."""
    return "; ".join(f"{n}: {HEADS.load(n).summary}" for n in HEADS)


__all__ = ["HEADS", "Head", "HeadChoice", "ModelFacts", "check_class_count", "make_head",
           "recognise", "supported"]

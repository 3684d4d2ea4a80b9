"""The gate without labels: the fp32 artifact's own detections are the reference.

A user's deployment cameras have footage, not labels. Given an unlabelled ``--val`` (a video
file, a folder of plain images, a stream URI), frames are sampled evenly, the fp32 ONNX
artifact's confident detections on them become pseudo-labels, and every other artifact is
scored against those: mAP against fp32 (per class), plus how well boxes and scores agree.
This measures how much a conversion or quantization changes the model's decisions, not how
accurate the model is; the report says so in words.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.dataset import Dataset, Sample
from edgekit.errors import DatasetError, ModelError
from edgekit.sources.media import VIDEO_SUFFIXES
from edgekit.types import Detections

from .calibration import _DATASET_MARKERS, _from_path, evenly

__all__ = ["DEFAULT_FRAMES", "Unlabelled", "frames_dataset", "is_unlabelled", "note",
           "pseudo_labelled", "read_frames"]

DEFAULT_FRAMES = 100  # enough frames for a stable mAP against fp32, a minute or two of gate


@dataclass(frozen=True, kw_only=True)
class Unlabelled:
    """An unlabelled validation source (a video, a folder of images, a URI)."""

    source: str
    count: int = DEFAULT_FRAMES


def is_unlabelled(source: Any) -> bool:
    """True for a video file, a folder of plain images or a stream URI (no labels beside)."""
    if isinstance(source, (Dataset, Unlabelled)) or source is None:
        return isinstance(source, Unlabelled)
    text = str(source)
    if "://" in text:
        return True
    path = Path(text).expanduser()
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES
    return path.is_dir() and not any((path / m).exists() for m in _DATASET_MARKERS)


def read_frames(source: str, count: int) -> list[tuple[str, np.ndarray]]:
    """Up to ``count`` frames: sampled evenly from a file or folder, consecutive from a URI
    (a live stream has no end to spread them over)."""
    if "://" not in source:
        try:
            return list(_from_path(Path(source).expanduser(), count))
        except DatasetError as exc:  # its messages say "calibration"; this is validation
            raise DatasetError(exc.message.replace("Calibration", "Validation").replace(
                "calibration", "validation"), hint=exc.hint) from None
    from edgekit.sources import SourceSettings, open_source

    frames = []
    with open_source(source, settings=SourceSettings()) as stream:
        stream.start()
        misses = 0
        while len(frames) < count and misses < 10:
            frame = stream.read(timeout=2.0)
            if frame is None:
                misses += 1
                continue
            frames.append((f"{source}#frame{frame.index}", frame.image))
    if not frames:
        raise DatasetError(f"No frames could be read from {source}.",
                           hint="Check the URI plays (e.g. with ffplay), or pass a video file.")
    return frames


def frames_dataset(source: Unlabelled, labels: list[str], workdir: Path) -> Dataset:
    """The sampled frames written as images, as a Dataset without boxes (yet)."""
    import cv2

    workdir.mkdir(parents=True, exist_ok=True)
    frames = evenly(read_frames(source.source, source.count), source.count)
    items = []
    for i, (_, image) in enumerate(frames):
        path = workdir / f"frame_{i:05d}.png"
        cv2.imwrite(str(path), image)
        items.append(Sample(image_path=path, width=image.shape[1], height=image.shape[0],
                            xyxy=np.zeros((0, 4), np.float32), class_id=np.zeros(0, np.int64),
                            image_id=i + 1))
    return Dataset(root=workdir, labels=list(labels), items=items)


def pseudo_labelled(frames: Dataset, detections: dict[int, Detections], *,
                    conf: float) -> Dataset:
    """The frames labelled with the reference's detections at or above ``conf``."""
    items = []
    for sample in frames.items:
        found = detections.get(sample.image_id, Detections.empty())
        keep = found.confidence >= conf
        beyond = found.class_id[keep] >= len(frames.labels)
        if beyond.any():
            raise ModelError(
                f"The fp32 model predicted class id {int(found.class_id[keep][beyond].max())}"
                f", but the labels name {len(frames.labels)} classes.",
                hint="Give all the model's class names, in its order (--labels).")
        items.append(replace(sample, xyxy=found.xyxy[keep], class_id=found.class_id[keep],
                             crowd=None))
    return replace(frames, items=items)


def note(source: str, frames: int, conf: float) -> str:
    """The sentence every label-free report carries."""
    return (f"Label-free: no labels were given, so each artifact is scored against the fp32 "
            f"ONNX artifact's own detections (score >= {conf:g}) on {frames} frames sampled "
            f"evenly from {source}. mAP here measures agreement with fp32, not accuracy.")

"""Calibration data for INT8: images from a folder, a video or a dataset, preprocessed once.

Every tensor goes through :func:`edgekit.preprocess.preprocess` with the bundle's own
InputSpec, the preprocessing every runtime uses, so the quantizer sees exactly the inputs the
deployed model will see (a second copy of the letterbox here would drift from it silently).

Too few images give scales fitted to a handful of scenes: NNCF's default subset is 300 and
onnxruntime's docs suggest a few hundred, so fewer than :data:`MIN_SAMPLES` warns.

The images are kept resized (uint8, the input size) and each float tensor is made when a tool
reads it: 200 float32 tensors at 640x640 hold 983 MB, their uint8 images 246 MB, and every
quantizer reads them one at a time anyway (issue 16: the export's peak memory at 640).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import InputSpec
from edgekit.data.dataset import Dataset, load_dataset
from edgekit.errors import DatasetError
from edgekit.sources.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["Calibration", "Tensors", "load_calibration", "DEFAULT_SAMPLES", "MIN_SAMPLES"]

DEFAULT_SAMPLES = 200  # enough for stable min/max scales; each one costs an inference per tool
MIN_SAMPLES = 50
# A folder laid out as a dataset (labels or annotations beside the images) is read as one, so
# the same --val folder can serve as calibration data.
_DATASET_MARKERS = ("data.yaml", "dataset.yaml", "classes.txt", "annotations.json",
                    "annotations", "labels")


class Tensors(Sequence[np.ndarray]):
    """Calibration tensors, each made from its resized uint8 image when it is read.

    A read-only sequence: ``len``, indexing, slicing (another ``Tensors``) and iteration, so
    quantizers take it where they take a list, and only one float tensor lives at a time.
    """

    def __init__(self, images: Sequence[np.ndarray], spec: InputSpec) -> None:
        self._images, self._spec = list(images), spec

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return Tensors(self._images[index], self._spec)
        from edgekit.preprocess import to_tensor

        return to_tensor(self._images[index], self._spec)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """Preprocessed calibration tensors and where they came from.

    Attributes:
        tensors: [1, C, H, W] (or NHWC, per the spec) float32 tensors, one per image, made
            on demand (:class:`Tensors`).
        source: The source as given (a path or a dataset's root).
        sha256: Hash of the tensors' bytes: the calibration set's identity in provenance.
    """

    tensors: Sequence[np.ndarray]
    source: str
    sha256: str

    def __len__(self) -> int:
        return len(self.tensors)


def load_calibration(source: str | Path | Dataset, spec: InputSpec, *,
                     count: int = DEFAULT_SAMPLES,
                     min_samples: int = MIN_SAMPLES) -> Calibration:
    """Reads up to ``count`` images, spread evenly over the source, and preprocesses them.

    Args:
        source: A folder of images, a video file (frames sampled evenly), a dataset (COCO
            JSON, YOLO folder or ``data.yaml``) or a loaded :class:`Dataset`.
        spec: The bundle's input spec.
        count: How many images to use at most.
        min_samples: Fewer images than this gives a ``UserWarning``.

    Returns:
        The calibration set.

    Raises:
        DatasetError: The source is missing, holds no images, or an image cannot be read or
            does not have 3 channels (the message names the file).
    """
    if count < 1:
        raise DatasetError(f"Calibration needs at least 1 image, got count={count}.")
    if isinstance(source, Dataset):
        images, label = _from_dataset(source, count), str(source.root)
    else:
        path = Path(source).expanduser()
        label = str(path)
        images = _from_path(path, count)
    tensors = Tensors([_resized(image, name, spec) for name, image in images], spec)
    if len(tensors) < min_samples:
        warnings.warn(f"Calibrating on {len(tensors)} images from {label}; at least "
                      f"{min_samples} (ideally {DEFAULT_SAMPLES}+) give stable INT8 scales.",
                      UserWarning, stacklevel=2)
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.tobytes())
    return Calibration(tensors=tensors, source=label, sha256=digest.hexdigest())


def evenly(items: Sequence[Any], count: int) -> list[Any]:
    """Up to ``count`` items spread evenly over ``items`` (all of them when fewer)."""
    if len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in picks]


def _from_path(path: Path, count: int) -> Iterator[tuple[str, np.ndarray]]:
    if not path.exists():
        raise DatasetError(f"Calibration source not found: {path}",
                           hint="Pass a folder of images, a video file or a dataset.")
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return _from_video(path, count)
    if path.is_file() and path.suffix.lower() in (".json", ".yaml", ".yml"):
        return _from_dataset(load_dataset(path), count)
    if path.is_dir() and any((path / m).exists() for m in _DATASET_MARKERS):
        return _from_dataset(load_dataset(path), count)
    if path.is_dir():
        return _from_folder(path, count)
    raise DatasetError(f"{path} is not a calibration source.",
                       hint="Pass a folder of images, a video file "
                            f"({', '.join(sorted(VIDEO_SUFFIXES))}) or a dataset.")


def _from_folder(folder: Path, count: int) -> Iterator[tuple[str, np.ndarray]]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file())
    if not files:
        raise DatasetError(f"Calibration folder {folder} holds no images.",
                           hint=f"Put {', '.join(sorted(IMAGE_SUFFIXES))} files in it.")
    # A generator: each image is resized as it is read, never all full-size at once.
    return ((str(p), _read(p)) for p in evenly(files, count))


def _from_dataset(dataset: Dataset, count: int) -> Iterator[tuple[str, np.ndarray]]:
    return ((str(s.image_path), _read(s.image_path)) for s in evenly(dataset.items, count))


def _read(path: Path) -> np.ndarray:
    import cv2

    # IMREAD_UNCHANGED: a grey or RGBA file must be refused, not silently converted into
    # something the deployed camera will never deliver.
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"Cannot read calibration image {path}.",
                           hint="Remove it, or replace it with a readable JPEG/PNG/BMP file.")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != 3:
        raise DatasetError(
            f"Calibration image {path} has {channels} channel(s); the model takes 3 (color).",
            hint="Convert it to 3-channel color (e.g. cv2.cvtColor) or remove it.")
    if image.dtype != np.uint8:
        raise DatasetError(f"Calibration image {path} is {image.dtype}, not 8-bit.",
                           hint="Convert it to an 8-bit JPEG or PNG.")
    return image


def _from_video(path: Path, count: int) -> Iterator[tuple[str, np.ndarray]]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DatasetError(f"Cannot open calibration video {path}.",
                               hint="Check the file is a complete video OpenCV/ffmpeg reads.")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        # Frame counts from container headers can be wrong; frames are read in order (seeking
        # is inexact in many codecs) and the wanted indices kept, each handed on as read.
        wanted = set(evenly(range(total), count)) if total > 0 else None
        found, index = 0, 0
        while found < count:
            if wanted is not None and index not in wanted:
                if not capture.grab():
                    break
            else:
                ok, frame = capture.read()
                if not ok:
                    break
                found += 1
                yield f"{path}#frame{index}", frame
            index += 1
    finally:
        capture.release()
    if not found:
        raise DatasetError(f"Calibration video {path} has no readable frames.",
                           hint="Check the file is a complete video OpenCV/ffmpeg reads.")


def _resized(image: np.ndarray, name: str, spec: InputSpec) -> np.ndarray:
    from edgekit.preprocess import resize_image

    try:
        return resize_image(image, spec)[0]
    except DatasetError as exc:
        raise DatasetError(f"Calibration image {name}: {exc.message}", hint=exc.hint) from None

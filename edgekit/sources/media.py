"""What counts as an image or a video file, and reading one image: the facts every file
reader shares (the sources, `edgekit predict`, datasets, calibration, batch inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg",
                            ".ts"})


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image as BGR uint8, or raises DatasetError naming the file."""
    import cv2

    path = Path(path)
    data = np.fromfile(path, np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        why = "does not exist" if data is None else "is not a readable image"
        raise DatasetError(f"{path} {why}.", hint="Give a JPEG/PNG/BMP/WebP/TIFF file.")
    return image

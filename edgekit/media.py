"""Reading the images, folders and video files that `edgekit predict` takes.

Live sources (cameras, RTSP, MJPEG) with their own threads and reconnects belong to the
pipeline; this module is for offline media, where every frame is wanted, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".ts"})


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One image of an offline source: its name (for output files) and pixels (BGR).

    In a folder, a file that cannot be read comes as an item with ``image`` None and
    ``error`` saying why, so one bad file does not end the folder.
    """

    name: str
    image: np.ndarray | None
    index: int
    error: str | None = None


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


def media_kind(path: Path) -> str:
    """Returns 'folder', 'image' or 'video' for a path, or raises DatasetError."""
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder.")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise DatasetError(
        f"{path}: unknown media type '{suffix}'.",
        hint=f"Images: {', '.join(sorted(IMAGE_SUFFIXES))}; videos: "
        f"{', '.join(sorted(VIDEO_SUFFIXES))}; or a folder of images.",
    )


def iter_media(path: str | Path) -> Iterator[MediaItem]:
    """Yields every image of an image file, a folder of images or a video file, in order."""
    path = Path(path)
    kind = media_kind(path)
    if kind == "image":
        yield MediaItem(path.stem, read_image(path), 0)
    elif kind == "folder":
        for i, file in enumerate(folder_images(path)):
            try:
                yield MediaItem(file.stem, read_image(file), i)
            except DatasetError as exc:
                yield MediaItem(file.stem, None, i, error=exc.message)
    else:
        yield from _iter_video(path)


def folder_images(path: Path) -> list[Path]:
    """The image files of a folder, sorted; raises DatasetError when there are none."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{path}: the folder holds no images.")
    return files


def output_names(path: Path) -> list[str]:
    """The annotated image names `predict` writes for an image or folder, one per input.

    ``a.jpg`` gives ``a.jpg``; where two inputs share a stem (``a.jpg``, ``a.png``) each keeps
    its suffix (``a_png.jpg``), so one input's result never replaces another's.
    """
    files = [path] if media_kind(path) == "image" else folder_images(path)
    stems = [f.stem for f in files]
    return [f"{f.stem}.jpg" if stems.count(f.stem) == 1 else
            f"{f.stem}_{f.suffix.lstrip('.').lower()}.jpg" for f in files]


def video_fps(path: Path) -> float:
    import cv2

    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return fps if fps and fps > 0 else 25.0


def _iter_video(path: Path) -> Iterator[MediaItem]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DatasetError(f"{path}: cannot open the video (corrupt, or an unsupported codec).")
    try:
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            yield MediaItem(f"{path.stem}_{index:06d}", image, index)
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise DatasetError(f"{path}: the video holds no readable frames.")

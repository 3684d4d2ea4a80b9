"""Where `edgekit predict` writes annotated output: one image per input, or one video."""

from __future__ import annotations

from pathlib import Path

from ..annotate import annotate
from ..errors import DatasetError
from ..media import MediaItem
from ..types import Detections


class ImageSink:
    """Writes OUT/<name>.jpg per input image."""

    def __init__(self, folder: Path) -> None:
        self.location = folder

    def __enter__(self) -> ImageSink:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, item: MediaItem, detections: Detections, labels: list[str]) -> None:
        import cv2

        target = self.location / f"{item.name}.jpg"
        if not cv2.imwrite(str(target), annotate(item.image, detections, labels)):
            raise DatasetError(f"Cannot write {target}.", hint="Check the output folder.")


class VideoSink:
    """Writes one MP4 with every frame annotated, at the source's frame rate."""

    def __init__(self, path: Path, fps: float) -> None:
        self.location = path
        self.fps = fps
        self._writer = None

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.release()

    def write(self, item: MediaItem, detections: Detections, labels: list[str]) -> None:
        import cv2

        if self._writer is None:
            h, w = item.image.shape[:2]
            self._writer = cv2.VideoWriter(
                str(self.location), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h)
            )
            if not self._writer.isOpened():
                raise DatasetError(f"Cannot write the video {self.location}.")
        self._writer.write(annotate(item.image, detections, labels))

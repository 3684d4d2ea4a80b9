"""Where `edgekit predict` writes annotated output: one image per input, or one video."""

from __future__ import annotations

from pathlib import Path

from ..annotate import annotate
from ..errors import DatasetError
from ..media import MediaItem
from ..outputs import OutputFolder
from ..types import Detections
from ..video_writer import open_video_writer


class ImageSink:
    """Writes one annotated JPEG per input image, at the paths claimed for them."""

    def __init__(self, folder: OutputFolder, targets: list[Path]) -> None:
        self.location = folder.folder
        self.folder = folder
        self.targets = targets
        self.note = ""

    def __enter__(self) -> ImageSink:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, item: MediaItem, detections: Detections, labels: list[str]) -> None:
        import cv2

        target = self.targets[item.index]
        if not cv2.imwrite(str(target), annotate(item.image, detections, labels)):
            raise DatasetError(f"Cannot write {target}.", hint="Check the output folder.")
        self.folder.wrote(target)


class VideoSink:
    """Writes one MP4 with every frame annotated, at the source's frame rate."""

    def __init__(self, folder: OutputFolder, path: Path, fps: float) -> None:
        self.folder = folder
        self.location = path
        self.fps = fps
        self._opened = None
        self.note = ""

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._opened is not None:
            self._opened.writer.release()
            self.folder.wrote(self.location)

    def write(self, item: MediaItem, detections: Detections, labels: list[str]) -> None:
        if self._opened is None:
            h, w = item.image.shape[:2]
            self._opened = open_video_writer(self.location, self.fps, (w, h))
            if self._opened is None:
                raise DatasetError(f"Cannot write the video {self.location}.",
                                   hint="OpenCV has no MP4 encoder here; check its build.")
            self.note = f"{self._opened.codec} ({self._opened.fourcc}), {self._opened.fps:g} fps"
        self._opened.writer.write(annotate(item.image, detections, labels))

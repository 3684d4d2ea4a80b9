"""An image file, a folder or a glob of images, delivered in sorted order, one frame per file."""

from __future__ import annotations

import glob
import time
from pathlib import Path

from ..errors import DatasetError
from ..types import Frame
from .base import Source, SourceSettings
from .media import IMAGE_SUFFIXES, read_image


class ImageFolderSource(Source):
    """Every image of a folder (``data/frames/``) or a glob (``data/*.jpg``), sorted by name,
    or one image file.

    An unreadable file is reported in ``stats`` and ``skipped`` and left out (``read`` gives
    None for it): one corrupt JPEG in a folder of thousands should not end the run.
    """

    live = False

    def __init__(self, uri: str, *, settings: SourceSettings | None = None) -> None:
        super().__init__(uri, settings=settings)
        pattern = uri.removeprefix("file://")
        self.skipped: dict[Path, DatasetError] = {}  # file -> why (bounded when looping)
        if Path(pattern).is_file():  # one image, read literally even with [ or * in its name
            files = [Path(pattern)]
        elif Path(pattern).is_dir():
            files = [p for p in Path(pattern).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            files = [Path(p) for p in glob.glob(pattern, recursive=True)
                     if Path(p).suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise DatasetError(f"{uri}: no images found.",
                               hint=f"Image types read: {', '.join(sorted(IMAGE_SUFFIXES))}.")
        self.files = sorted(files)
        self._position = 0

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self._position >= len(self.files):
            if not self.settings.loop:
                self.stats.status = "finished"
                raise EOFError(self.uri)
            self._position = 0
        index = self._position
        self._position += 1
        try:
            image = read_image(self.files[index])
        except DatasetError as exc:
            self.skipped[self.files[index]] = exc
            self.stats.errors += 1
            self.stats.last_error = exc.message
            return None
        self.stats.frames += 1
        return Frame(image, time.time_ns(), index, self.uri)

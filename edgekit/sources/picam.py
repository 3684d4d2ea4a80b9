"""``picam://N``: a Raspberry Pi camera through picamera2 (installed with Raspberry Pi OS).

picamera2 probes /dev when it is imported, so it is imported only when the source opens.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..errors import DatasetError, require
from .base import LiveSource, SourceSettings


class PicamSource(LiveSource):
    """``picam://0?width=1280&height=720``: frames as BGR, the newest only."""

    def __init__(self, uri: str, *, settings: SourceSettings | None = None) -> None:
        super().__init__(uri, settings=settings)
        parts = urlsplit(uri)
        if not (parts.netloc or "0").isdigit():
            raise DatasetError(f"{uri}: the camera number must be a number, as picam://0.")
        self.camera = int(parts.netloc or 0)
        query = parse_qs(parts.query)
        self.size = (int(query.get("width", ["1280"])[-1]), int(query.get("height", ["720"])[-1]))

    def start(self) -> None:
        # Fail at once, not in the retry loop: a missing library will not come back by itself.
        require("picamera2", purpose=f"{self.uri} (install python3-picamera2 on Raspberry Pi OS)")
        super().start()

    def _open(self) -> object:
        from picamera2 import Picamera2

        camera = Picamera2(self.camera)
        # picamera2's "RGB888" is B,G,R in memory: already OpenCV's order.
        camera.configure(camera.create_video_configuration(
            main={"size": self.size, "format": "RGB888"}, buffer_count=2))
        camera.start()
        return camera

    def _grab(self, handle: object) -> np.ndarray | None:
        return handle.capture_array("main")  # type: ignore[attr-defined]

    def _release(self, handle: object) -> None:
        handle.stop()  # type: ignore[attr-defined]
        handle.close()  # type: ignore[attr-defined]

"""Sources read through OpenCV: video files, V4L2 cameras, RTSP and HTTP MJPEG streams, CSI.

Network streams are opened with explicit open and read timeouts: without them a frozen server
blocks ``read()`` for 30 s (MJPEG) or 90 s (RTSP) in OpenCV's FFmpeg backend (TOOLCHAIN.md).
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..errors import DatasetError, EdgekitError
from ..types import Frame
from .base import LiveSource, Source, SourceSettings


def quiet_native_logs() -> None:
    """Keeps OpenCV's and FFmpeg's own lines (one per failed connect or lost packet) off the
    terminal unless edgekit's source logging is at DEBUG; edgekit logs each retry itself.

    Both libraries read these variables when they first load, so this runs before cv2 is
    imported by a source; a user's own setting wins.
    """
    if not logging.getLogger("edgekit.sources").isEnabledFor(logging.DEBUG):
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


quiet_native_logs()


def _check_image(image: np.ndarray | None) -> np.ndarray | None:
    # A decoder may hand back an empty or grey-only buffer for a corrupt frame: treat as no frame.
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        return None
    return image


class VideoFileSource(Source):
    """Every frame of a video file, in order (``clip.mp4``, ``file:///data/clip.mp4``)."""

    live = False

    def __init__(self, uri: str, *, settings: SourceSettings | None = None) -> None:
        super().__init__(uri, settings=settings)
        self.path = Path(uri.removeprefix("file://"))
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: no such video file.",
                               hint="Check the path, or give a folder, a glob or a stream URI.")
        self._capture = None
        self._index = 0
        self.fps = 0.0

    def start(self) -> None:
        import cv2

        if self._capture is None:
            self._capture = cv2.VideoCapture(str(self.path))
            if not self._capture.isOpened():
                raise DatasetError(f"{self.path}: cannot open the video (corrupt, or an "
                                   "unsupported codec).", hint="Try `ffmpeg -i` on it.")
            self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.stats.connected, self.stats.status = True, "reading"

    def read(self, timeout: float = 1.0) -> Frame | None:
        import cv2

        self.start()
        ok, image = self._capture.read()
        if not ok and self.settings.loop and self._index > 0:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        if not ok:
            self.stats.status = "finished"
            raise EOFError(self.uri)
        image = _check_image(image)
        if image is None:
            self.stats.errors += 1
            self.stats.last_error = f"frame {self._index} could not be decoded"
            self._index += 1
            return None
        frame = Frame(image, time.time_ns(), self._index, self.uri)
        self._index += 1
        self.stats.frames += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class OpenCVLiveSource(LiveSource):
    """A live source behind ``cv2.VideoCapture``; subclasses say what to open and how."""

    def _capture_args(self) -> tuple:
        raise NotImplementedError

    def _open(self) -> object:
        import cv2

        capture = cv2.VideoCapture(*self._capture_args())
        if not capture.isOpened():
            capture.release()
            raise OSError(f"cannot open {self.uri}")
        return capture

    def _grab(self, handle: object) -> np.ndarray | None:
        ok, image = handle.read()  # type: ignore[attr-defined]
        return _check_image(image) if ok else None

    def _release(self, handle: object) -> None:
        handle.release()  # type: ignore[attr-defined]


class StreamSource(OpenCVLiveSource):
    """``rtsp://``, ``http://`` and ``https://`` (MJPEG) streams through FFmpeg, with timeouts."""

    def _capture_args(self) -> tuple:
        import cv2

        s = self.settings
        return (self.uri, cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(s.open_timeout_s * 1000),
                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(s.read_timeout_s * 1000)])


class DeviceSource(OpenCVLiveSource):
    """A V4L2 camera: ``/dev/video0``, ``v4l2:///dev/video0`` or a bare index ``0``.

    Query options set the capture mode: ``/dev/video0?width=1280&height=720&fps=30``.
    """

    def __init__(self, uri: str, *, settings: SourceSettings | None = None) -> None:
        super().__init__(uri, settings=settings)
        parts = urlsplit(uri.removeprefix("v4l2://"))
        self.device: int | str = int(parts.path) if parts.path.isdigit() else parts.path
        self.mode = {k: int(v[-1]) for k, v in parse_qs(parts.query).items()
                     if k in ("width", "height", "fps")}

    def _capture_args(self) -> tuple:
        import cv2

        return (self.device, cv2.CAP_V4L2)

    def _open(self) -> object:
        import cv2

        capture = super()._open()
        props = {"width": cv2.CAP_PROP_FRAME_WIDTH, "height": cv2.CAP_PROP_FRAME_HEIGHT,
                 "fps": cv2.CAP_PROP_FPS}
        for key, value in self.mode.items():
            capture.set(props[key], value)
        # One buffered frame: the driver's default of 4 adds up to 4 frame intervals of lag.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture


def csi_pipeline(sensor_id: int, *, width: int = 1280, height: int = 720, fps: int = 30,
                 flip: int = 0) -> str:
    """The GStreamer pipeline that reads a Jetson CSI camera into BGR frames for OpenCV.

    nvarguscamerasrc delivers NV12 in NVMM (GPU) memory; nvvidconv copies it to system memory
    as BGRx, and videoconvert drops the x. ``drop=1 max-buffers=1`` keeps only the newest frame.
    """
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM),width={width},height={height},framerate={fps}/1,"
        f"format=NV12 ! nvvidconv flip-method={flip} ! video/x-raw,format=BGRx ! "
        "videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1 sync=false"
    )


class CsiSource(OpenCVLiveSource):
    """A Jetson CSI camera: ``csi://0?width=1920&height=1080&fps=30&flip=2``.

    Needs an OpenCV built with GStreamer (JetPack's); pip's opencv wheels have none.
    """

    def __init__(self, uri: str, *, settings: SourceSettings | None = None) -> None:
        super().__init__(uri, settings=settings)
        parts = urlsplit(uri)
        if not re.fullmatch(r"\d+", parts.netloc or "0"):
            raise DatasetError(f"{uri}: the CSI sensor id must be a number, as csi://0.")
        options = {k: int(v[-1]) for k, v in parse_qs(parts.query).items()
                   if k in ("width", "height", "fps", "flip")}
        self.pipeline = csi_pipeline(int(parts.netloc or 0), **options)

    def start(self) -> None:
        import cv2

        if "GStreamer:                   YES" not in cv2.getBuildInformation():
            raise EdgekitError(
                f"{self.uri}: this OpenCV has no GStreamer support, which CSI cameras need.",
                hint="On a Jetson use JetPack's OpenCV (apt python3-opencv), not the pip wheel.")
        super().start()

    def _capture_args(self) -> tuple:
        import cv2

        return (self.pipeline, cv2.CAP_GSTREAMER)

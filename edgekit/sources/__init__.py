"""Frame sources named by URI, as jetson-inference names them.

=====================  ==========================================================
``clip.mp4``           every frame of a video file, in order
``frames/``, ``*.jpg`` every image of a folder or a glob, sorted
``/dev/video0``, ``0`` a V4L2 camera (``v4l2:///dev/video0?width=1280&height=720``)
``rtsp://...``         an RTSP stream (IP cameras)
``http(s)://...``      an MJPEG-over-HTTP stream
``csi://0``            a Jetson CSI camera through a GStreamer pipeline
``picam://0``          a Raspberry Pi camera through picamera2
``testsrc://``         generated road scenes with moving vehicles
=====================  ==========================================================

Live sources keep only the newest frame and reconnect by themselves; files and folders give
every frame. ``import edgekit.sources`` loads neither OpenCV nor any camera library.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UnknownNameError
from ..registry import Registry
from .base import LatestSlot, LiveSource, Source, SourceError, SourceSettings, SourceStats
from .media import IMAGE_SUFFIXES

SOURCES: Registry[type[Source]] = Registry(
    "source",
    {
        "video": "edgekit.sources.capture:VideoFileSource",
        "images": "edgekit.sources.images:ImageFolderSource",
        "v4l2": "edgekit.sources.capture:DeviceSource",
        "stream": "edgekit.sources.capture:StreamSource",
        "csi": "edgekit.sources.capture:CsiSource",
        "picam": "edgekit.sources.picam:PicamSource",
        "testsrc": "edgekit.sources.testsrc:TestSource",
    },
)

# URI scheme -> SOURCES entry. Paths without a scheme are sorted out by source_kind().
SCHEMES: dict[str, str] = {
    "rtsp": "stream", "rtsps": "stream", "http": "stream", "https": "stream",
    "csi": "csi", "picam": "picam", "testsrc": "testsrc", "v4l2": "v4l2",
}


def source_kind(uri: str) -> str:
    """Returns the SOURCES entry that reads ``uri``, or raises listing the known schemes."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in SCHEMES:
        return SCHEMES[scheme]
    if scheme and scheme != "file" and not re.fullmatch(r"[a-z]", scheme):  # C:\ is a path
        raise UnknownNameError(
            f"Unknown source scheme '{scheme}://' in {uri!r}.",
            hint="Known: " + ", ".join(f"{s}://" for s in sorted(SCHEMES)) + ", file://, a "
                 "video file, a folder or glob of images, /dev/videoN or a camera index.",
        )
    path = uri.removeprefix("file://")
    if path.isdigit() or path.startswith("/dev/video"):
        return "v4l2"
    if Path(path).is_dir() or any(c in path for c in "*?[") or \
            Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return "images"
    return "video"


def open_source(uri: str, *, settings: SourceSettings | None = None) -> Source:
    """Builds the source for a URI (nothing is read until ``start``/``read``).

    Raises:
        UnknownNameError: The scheme is not one edgekit reads.
        DatasetError: A file, folder or option in the URI is wrong.
    """
    return SOURCES.load(source_kind(uri))(uri, settings=settings)


__all__ = ["SCHEMES", "SOURCES", "LatestSlot", "LiveSource", "Source", "SourceError",
           "SourceSettings", "SourceStats", "open_source", "source_kind"]

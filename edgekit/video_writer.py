"""Opening an MP4 writer: H.264 where the installed OpenCV can encode it, MPEG-4 Part 2 else.

pip's OpenCV wheels carry an FFmpeg without an H.264 encoder (x264 is GPL), so "avc1" fails
to open there and "mp4v" is what they write; OpenCV builds with an H.264 encoder (distribution
packages, JetPack) write "avc1", which browsers and phones play. The first that opens wins, and
the caller says which (``codec``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .native_log import native_stderr_to_log

# (fourcc, what people call it), best first.
CODECS: tuple[tuple[str, str], ...] = (("avc1", "H.264"), ("mp4v", "MPEG-4 Part 2"))
DEFAULT_FPS = 25.0


@dataclass(slots=True)
class OpenedWriter:
    """A ``cv2.VideoWriter`` that opened, and the codec it writes."""

    writer: Any
    fourcc: str
    codec: str
    fps: float
    size: tuple[int, int]


def open_video_writer(path: str | Path, fps: float, size: tuple[int, int], *,
                      codecs: tuple[tuple[str, str], ...] = CODECS) -> OpenedWriter | None:
    """Opens a writer at ``fps`` for frames of ``size`` (width, height); None if none opens.

    A failed "avc1" probe leaves a zero-byte file behind; the next codec overwrites it.
    """
    import cv2

    fps = fps if fps and fps > 0 else DEFAULT_FPS
    for fourcc, name in codecs:
        # A codec that is missing makes FFmpeg and OpenCV print errors: to the debug log.
        with native_stderr_to_log("edgekit.video"):
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return OpenedWriter(writer, fourcc, name, fps, size)
        writer.release()
    return None

"""Videos cut into time segments: the unit of work, of retry and of resume.

A segment is a half-open range of frame indices ``[start, stop)`` of one video; with
``every=N`` it covers the frames whose index is a multiple of N. The last segment of a video
is open-ended (``stop=None``: up to the end of the file), so a container that under-reports
its frame count loses no frame.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

# Frame counts from container headers can be wrong; a count of 0 or less means unknown.
UNKNOWN = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoInfo:
    """What probing a video found (without decoding it)."""

    source: str
    video_id: str
    fps: float
    frames: int
    width: int
    height: int
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """Frames ``[start, stop)`` of one video (``stop=None``: to the end of the file)."""

    source: str
    video_id: str
    index: int
    start: int
    stop: int | None
    fps: float
    every: int

    @property
    def key(self) -> str:
        return f"{self.video_id}/{self.index:05d}"

    def expected_frames(self, total: int) -> int:
        """How many sampled frames this segment holds when the video has ``total`` frames."""
        stop = total if self.stop is None else min(self.stop, total)
        return count_sampled(self.start, stop, self.every) if total > 0 else 0


def video_id(source: str) -> str:
    """A filesystem- and Hive-partition-safe id: the file's stem plus a hash of its full name.

    The hash keeps two ``cam1.mp4`` files in different folders apart.
    """
    stem = source.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0] or "video"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60]
    return f"{safe}-{hashlib.sha1(source.encode()).hexdigest()[:8]}"


def count_sampled(start: int, stop: int, every: int) -> int:
    """Multiples of ``every`` in ``[start, stop)``."""
    if stop <= start:
        return 0
    first = -(-start // every) * every
    return 0 if first >= stop else (stop - 1 - first) // every + 1


def step_for(*, every: int | None, fps: float | None, video_fps: float) -> int:
    """Frames to step: ``--every N`` as given, ``--fps F`` as the nearest whole stride."""
    if fps is not None:
        return max(1, round(video_fps / fps)) if video_fps > 0 else 1
    return every or 1


def split(info: VideoInfo, *, segment_seconds: float, every: int) -> list[Segment]:
    """Cuts a probed video into segments of about ``segment_seconds``.

    Segment boundaries are multiples of ``every``, so no sampled frame sits on a seam twice.
    """
    if info.error is not None:
        return []
    fps = info.fps if info.fps > 0 else 25.0
    length = max(every, int(round(segment_seconds * fps)) // every * every)
    if info.frames <= 0:
        count = 1  # unknown length: one open-ended segment
    else:
        count = max(1, math.ceil(info.frames / length))
    return [
        Segment(source=info.source, video_id=info.video_id, index=i, start=i * length,
                stop=None if i == count - 1 else (i + 1) * length, fps=fps, every=every)
        for i in range(count)
    ]

"""File sinks: an annotated video, and JSON lines of detections and events."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errors import EdgekitError
from .base import Result, Sink
from .rotation import RotatingPath, Rotation


class SinkError(EdgekitError):
    """A sink cannot open or write its output."""


def _writable_file(uri: str) -> Path:
    path = Path(urlsplit(uri).path if uri.startswith("file://") else uri.split("?", 1)[0])
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SinkError(f"{path}: the folder {parent} does not exist.",
                        hint="Create it first, or write somewhere else.")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SinkError(f"{path}: not writable.", hint="Pick a path you may write to.")
    return path


class VideoFileSink(Sink):
    """An annotated video: ``out.mp4?fps=25`` (default 25 fps; mp4v codec, plays anywhere).

    The first frame fixes the size; frames of another size (a camera that changed mode) are
    resized to it, since a video file cannot change resolution. With several cameras each gets
    its own file, ``out_<camera>.mp4``. ``?rotate=1h&keep=24`` (or ``rotate=500MB``) starts a
    new file per hour (or size) and keeps the newest 24 (see ``edgekit.sinks.rotation``).
    """

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        query = parse_qs(urlsplit(uri).query)
        self.fps = float(query.get("fps", ["25"])[-1])
        self.rotation = Rotation.from_query(uri, query)
        self.path: Path | None = None
        self._writers: dict[str, tuple[object, tuple[int, int], Path]] = {}
        self._rotating: dict[str, RotatingPath] = {}
        self.frames = 0

    def open(self) -> None:
        self.path = _writable_file(self.uri)

    def _target(self, camera: str) -> Path:
        if len(self.cameras) <= 1:
            return self.path
        return self.path.with_name(f"{self.path.stem}_{camera}{self.path.suffix}")

    def write(self, result: Result) -> None:
        import cv2

        image = result.annotated()
        if result.camera not in self._writers:
            h, w = image.shape[:2]
            target = self._target(result.camera)
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                     (w, h))
            if not writer.isOpened():
                raise SinkError(f"{target}: OpenCV cannot write this video.",
                                hint="Use .mp4 or .avi.")
            self._writers[result.camera] = (writer, (w, h), target)
        writer, size, target = self._writers[result.camera]
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        writer.write(image)
        self.frames += 1
        if self.rotation is not None:
            self._maybe_rotate(result.camera, writer, target)

    def _maybe_rotate(self, camera: str, writer: object, target: Path) -> None:
        """Closes and renames a camera's file once it is due; the next frame opens a new one."""
        rotating = self._rotating.setdefault(camera, RotatingPath(target, self.rotation))
        if rotating.due(target.stat().st_size if target.exists() else 0):
            writer.release()
            del self._writers[camera]
            rotating.roll()
    def close(self) -> None:
        for writer, _, _ in self._writers.values():
            writer.release()
        self._writers.clear()

    def describe(self) -> str:
        files = ", ".join(str(self._target(c)) for c in self.cameras) or str(self.path)
        return f"{files} ({self.frames} frames)"


class JsonlSink(Sink):
    """One JSON object per processed frame (camera, index, capture time, detections, events).

    ``events.jsonl?events_only=1`` writes only frames that have analytics events;
    ``?rotate=1h&keep=24`` (or ``rotate=100MB``) starts a new file per hour (or size) and keeps
    the newest 24 finished ones (see ``edgekit.sinks.rotation``).
    """

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        query = parse_qs(urlsplit(uri).query)
        self.events_only = query.get("events_only", ["0"])[-1] == "1"
        self.rotation = Rotation.from_query(uri, query)
        self._rotating: RotatingPath | None = None
        self.path: Path | None = None
        self._file = None
        self.lines = 0

    def open(self) -> None:
        self.path = _writable_file(self.uri)
        self._file = self.path.open("w")
        if self.rotation is not None:
            self._rotating = RotatingPath(self.path, self.rotation)

    def write(self, result: Result) -> None:
        if self.events_only and not result.events:
            return
        self._file.write(json.dumps(result.record()) + "\n")
        self._file.flush()  # a reader tailing the file sees each frame as it happens
        self.lines += 1
        if self._rotating is not None and self._rotating.due(self._file.tell()):
            self._file.close()
            self._rotating.roll()
            self._file = self.path.open("w")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def describe(self) -> str:
        return f"{self.path} ({self.lines} lines)"

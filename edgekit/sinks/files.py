"""File sinks: an annotated video, annotated images, and JSON lines of detections and events."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errors import EdgekitError
from ..video_writer import DEFAULT_FPS, open_video_writer
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
    """An annotated video that plays at the speed it was filmed: ``out.mp4`` (``?fps=N`` forces
    a rate).

    The rate is the source's own for files (every frame is written), and for live sources the
    rate frames really reach the sink, measured over the first ``MEASURE_S`` seconds (a live
    camera's frames are dropped when inference is slower, so its nominal rate would play too
    fast). H.264 where this OpenCV can write it, MPEG-4 Part 2 otherwise; ``describe`` says
    which. The first frame fixes the size; frames of another size (a camera that changed mode)
    are resized to it. With several cameras each gets its own file, ``out_<camera>.mp4``.
    ``?rotate=1h&keep=24`` (or ``rotate=500MB``) starts a new file per hour (or size) and keeps
    the newest 24 (see ``edgekit.sinks.rotation``).
    """

    MEASURE_S = 2.0
    MEASURE_FRAMES = 30  # bounds the frames held while measuring

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        query = parse_qs(urlsplit(uri).query)
        self.fps = float(query["fps"][-1]) if "fps" in query else None
        self.rotation = Rotation.from_query(uri, query)
        self.path: Path | None = None
        self._writers: dict[str, tuple[object, tuple[int, int], Path]] = {}
        self._rotating: dict[str, RotatingPath] = {}
        self._pending: dict[str, list[Result]] = {}
        self._rates: dict[str, float] = {}  # camera -> the rate its files are written at
        self.opened: dict[str, str] = {}  # camera -> "H.264 (avc1), 15 fps"
        self.frames = 0

    def open(self) -> None:
        self.path = _writable_file(self.uri)

    def _target(self, camera: str) -> Path:
        if len(self.cameras) <= 1:
            return self.path
        return self.path.with_name(f"{self.path.stem}_{camera}{self.path.suffix}")

    def write(self, result: Result) -> None:
        camera = result.camera
        if camera in self._rates:  # rate known (also after a rotation closed the file)
            self._append(result)
            return
        pending = self._pending.setdefault(camera, [])
        pending.append(result)
        rate = self._rate(camera, pending, final=False)
        if rate is not None:
            self._rates[camera] = rate
            for held in self._pending.pop(camera):
                self._append(held)

    def _rate(self, camera: str, held: list[Result], *, final: bool) -> float | None:
        """Frames per second to write at, or None while still measuring a live source."""
        if self.fps:
            return self.fps
        source = self.sources.get(camera)
        nominal = float(getattr(source, "fps", 0.0) or 0.0)
        if source is not None and not source.live:
            return nominal or DEFAULT_FPS
        span_s = (held[-1].frame.timestamp_ns - held[0].frame.timestamp_ns) / 1e9
        if not final and span_s < self.MEASURE_S and len(held) < self.MEASURE_FRAMES:
            return None
        if len(held) >= 2 and span_s > 0:
            return round((len(held) - 1) / span_s, 2)
        return nominal or DEFAULT_FPS

    def _open_writer(self, camera: str, image: object) -> None:
        h, w = image.shape[:2]
        target = self._target(camera)
        opened = open_video_writer(target, self._rates[camera], (w, h))
        if opened is None:
            raise SinkError(f"{target}: OpenCV cannot write this video.", hint="Use .mp4 or .avi.")
        self._writers[camera] = (opened.writer, (w, h), target)
        self.opened[camera] = f"{opened.codec} ({opened.fourcc}), {opened.fps:g} fps"

    def _append(self, result: Result) -> None:
        import cv2

        image = result.annotated()
        if result.camera not in self._writers:
            self._open_writer(result.camera, image)
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
        for camera, held in list(self._pending.items()):  # a run shorter than the measurement
            if held:
                self._rates[camera] = self._rate(camera, held, final=True)
                for result in held:
                    self._append(result)
        self._pending.clear()
        for writer, _, _ in self._writers.values():
            writer.release()
        self._writers.clear()

    def describe(self) -> str:
        files = ", ".join(str(self._target(c)) for c in self.cameras) or str(self.path)
        how = "; ".join(dict.fromkeys(self.opened.values()))
        return f"{files} ({self.frames} frames{', ' + how if how else ''})"


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


def image_names(files: list[Path]) -> list[str]:
    """The annotated image names for a list of input images, one per input.

    ``a.jpg`` gives ``a.jpg``; where two inputs share a stem (``a.jpg``, ``a.png``) each keeps
    its suffix (``a_png.jpg``), so one input's result never replaces another's.
    """
    stems = Counter(f.stem for f in files)
    return [f"{f.stem}.jpg" if stems[f.stem] == 1 else
            f"{f.stem}_{f.suffix.lstrip('.').lower()}.jpg" for f in files]


class ImageFilesSink(Sink):
    """One annotated JPEG per frame, into a folder: ``out/`` (the trailing slash says folder).

    Frames of an image source are named after their input files (:func:`image_names`), other
    frames ``<camera>_<index>.jpg``. The folder is created if missing.
    """

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.folder = Path(urlsplit(uri).path if uri.startswith("file://") else uri)
        self.written: list[Path] = []
        self._names: dict[str, list[str]] = {}  # camera -> names for its source's files

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"Cannot create the output folder {self.folder}: {exc.strerror}.",
                            hint="Choose a folder you can write to.") from None
        if not os.access(self.folder, os.W_OK):
            raise SinkError(f"{self.folder}: not writable.", hint="Pick a folder you may write to.")

    def target(self, camera: str, index: int) -> Path:
        """Where the frame ``index`` of ``camera`` is written (known before ``open``, so a
        caller can check those names first)."""
        if camera not in self._names:
            self._names[camera] = image_names(getattr(self.sources.get(camera), "files", []))
        names = self._names[camera]
        if index < len(names):
            return self.folder / names[index]
        return self.folder / f"{camera}_{index:06d}.jpg"

    def write(self, result: Result) -> None:
        import cv2

        target = self.target(result.camera, result.frame.index)
        if not cv2.imwrite(str(target), result.annotated()):
            raise SinkError(f"Cannot write {target}.", hint="Check the output folder.")
        self.written.append(target)

    def describe(self) -> str:
        return f"{self.folder} ({len(self.written)} images)"

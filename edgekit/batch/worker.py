"""The Ray actor of a batch run: loads the bundle once, then decodes and detects segments.

This module never imports ray: the driver wraps ``BatchWorker`` with ``ray.remote`` and its
options, so the class stays testable as plain Python and ``import edgekit.batch`` stays light.
Frames are decoded here, next to the model; only detections travel back to the driver.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..analytics.config import AnalyticsConfig, tracking_thresholds
from ..types import Detections, Frame
from .plan import UNKNOWN, Segment, VideoInfo, video_id
from .records import FrameRows


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """How every worker of a run opens and applies the model."""

    board: str
    format: str | None = None
    precision: str | None = None
    threads: int = 1
    conf: float | None = None
    iou: float | None = None
    track: bool = False
    analytics: AnalyticsConfig | None = None
    # The caller's own way to open the shipped bundle's detector (a picklable callable,
    # Bundle -> Detector), instead of the board runner's choice: the export gate measures
    # one given artifact with its own backend options, sharded or not.
    opener: Callable[[Any], Any] | None = None


@dataclass(slots=True, kw_only=True)
class SegmentOutput:
    """What one segment produced: its rows, and the numbers the summary adds up."""

    segment: Segment
    table: Any = None  # pyarrow.Table, None when the segment failed
    frames: int = 0
    last_frame: int = -1
    per_class: dict[str, int] = field(default_factory=dict)
    analytics: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)
    table_bytes: int = 0
    error: str | None = None


class BatchWorker:
    """One model, loaded once, run over whole segments (a Ray actor in a batch run).

    Args:
        bundle_files: The packed bundle (``bundle_ship.pack``), the bytes the driver hashed.
        settings: Board, artifact filter, threads, thresholds, tracking.
    """

    def __init__(self, bundle_files: dict[str, bytes] | list[Any],
                 settings: WorkerSettings) -> None:
        import cv2

        from ..devices.runners import load_runner
        from .bundle_ship import unpack

        if isinstance(bundle_files, list):
            # [ObjectRef]: the driver put the bundle into the object store once; a ref nested
            # in a list is not resolved by Ray before __init__, so every (re)started actor
            # fetches it here, and Ray keeps it alive while this actor may restart.
            import ray

            bundle_files = ray.get(bundle_files[0])
        # One decode thread per worker: the worker count, not FFmpeg, spreads the cores.
        cv2.setNumThreads(1)
        self.settings = settings
        bundle = unpack(bundle_files)
        if settings.opener is not None:
            self.detector = settings.opener(bundle)
        else:
            # A Runner only adds its plan to the Detector; calling either is the same.
            self.detector = load_runner(bundle, board=settings.board, format=settings.format,
                                        precision=settings.precision,
                                        threads=settings.threads).detector
        self.labels = self.detector.labels
        self._datasets: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        """Where this worker runs and what it really runs (read back from the runtime)."""
        node = ""
        try:
            import ray

            node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        except ImportError:
            pass
        return {"node_id": node, "hostname": socket.gethostname(), "pid": os.getpid(),
                "artifact": self.detector.artifact.key, "sha256": self.detector.artifact.sha256,
                "executed_on": self.detector.backend.executed_on, "board": self.settings.board}

    def probe(self, source: str) -> VideoInfo:
        """Reads a video's frame rate, frame count and size from its header (no decoding)."""
        import cv2

        vid = video_id(source)
        capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
        try:
            ok, first = capture.read() if capture.isOpened() else (False, None)
            if not ok:
                return VideoInfo(source=source, video_id=vid, fps=0.0, frames=0, width=0,
                                 height=0, error="cannot open or decode (corrupt, empty, or an "
                                 "unsupported codec)")
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            return VideoInfo(source=source, video_id=vid, fps=float(capture.get(cv2.CAP_PROP_FPS)),
                             frames=frames if frames > 0 else UNKNOWN,
                             width=first.shape[1], height=first.shape[0])
        finally:
            capture.release()

    def process(self, segment: Segment) -> SegmentOutput:
        """Decodes the segment's frames and detects on every ``segment.every``-th one."""
        out = SegmentOutput(segment=segment, worker=self.describe())
        try:
            self._process(segment, out)
        except Exception as exc:  # a bad file must not stop the run: reported in the summary
            out.table, out.error = None, f"{type(exc).__name__}: {exc}"
        return out

    def _process(self, segment: Segment, out: SegmentOutput) -> None:

        s = self.settings
        capture = _open_at(segment.source, segment.start)
        analytics = self._analytics(segment)
        floor, report = self._thresholds(analytics)
        rows = FrameRows(source=segment.source, segment=segment.index, labels=self.labels)
        decode = infer = track = 0.0
        cpu = time.process_time()  # CPU, not wall: comparable on a shared machine
        index = segment.start
        try:
            while segment.stop is None or index < segment.stop:
                t0 = time.perf_counter()
                if index % segment.every:
                    ok, image = capture.grab(), None  # skipped frames are decoded, not converted
                else:
                    ok, image = capture.read()
                t1 = time.perf_counter()
                decode += t1 - t0
                if not ok:
                    break
                if image is not None:
                    detections = self.detector(image, conf=floor, iou=s.iou)
                    t2 = time.perf_counter()
                    infer += t2 - t1
                    timestamp = index / segment.fps
                    if analytics is not None:
                        frame = Frame(image, int(timestamp * 1e9), index, segment.source)
                        detections, _ = analytics.update(frame, detections, conf=report)
                        track += time.perf_counter() - t2
                    rows.add(index, timestamp, detections)
                    _count(out.per_class, detections, self.labels)
                index += 1
        finally:
            capture.release()
        out.table = rows.table()
        out.frames = len(rows.frames)
        out.last_frame = index - 1
        out.analytics = _analytics_totals(analytics) if analytics is not None else None
        out.seconds = {"decode": decode, "infer": infer, "track": track,
                       "cpu": time.process_time() - cpu}
        out.table_bytes = int(out.table.nbytes)  # what crosses the object store

    def _analytics(self, segment: Segment) -> Any:
        s = self.settings
        if not (s.track or s.analytics):
            return None
        from ..analytics import Analytics

        config = s.analytics or AnalyticsConfig()
        # The tracker's clock is the processed frame rate, not the file's.
        tracker = replace(config.tracker, frame_rate=segment.fps / segment.every)
        return Analytics(replace(config, tracker=tracker), self.labels)

    def _thresholds(self, analytics: Any) -> tuple[float | None, float | None]:
        """(score to decode at, score to report at; None: the same) for this run's tracker."""
        conf = self.settings.conf
        if analytics is None or analytics.config.tracker.detection_conf is None:
            return conf, None
        return tracking_thresholds(
            self.detector.manifest.output.conf_threshold if conf is None else conf,
            analytics.config.tracker.detection_conf)

    def predict_images(self, dataset_uri: str, image_ids: list[int]) -> dict[int, Detections]:
        """Detections for some images of a labelled dataset (one shard of a sharded eval)."""
        from ..data.dataset import load_dataset

        dataset = self._datasets.get(dataset_uri)
        if dataset is None:
            dataset = self._datasets[dataset_uri] = load_dataset(dataset_uri)
        wanted = set(image_ids)
        s = self.settings
        return {
            sample.image_id: self.detector(dataset.read_image(sample), conf=s.conf, iou=s.iou)
            for sample in dataset.items
            if sample.image_id in wanted
        }


def _open_at(source: str, start: int) -> Any:
    """Opens a video positioned on frame ``start``.

    OpenCV's FFmpeg backend seeks to the keyframe before the target and decodes forward, so
    the position is exact for constant-frame-rate files; where the position it reports back
    differs, the file is read from the start instead (slow, but never a wrong frame).
    """
    import cv2

    capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise RuntimeError("cannot open the video")
    if start > 0:
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        if int(capture.get(cv2.CAP_PROP_POS_FRAMES)) != start:
            capture.release()
            capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
            for _ in range(start):
                if not capture.grab():
                    break
    return capture


def _count(per_class: dict[str, int], detections: Detections, labels: list[str]) -> None:
    ids, counts = np.unique(detections.class_id, return_counts=True)
    for cid, n in zip(ids.tolist(), counts.tolist(), strict=True):
        name = labels[cid] if 0 <= cid < len(labels) else str(cid)
        per_class[name] = per_class.get(name, 0) + n


def _analytics_totals(analytics: Any) -> dict[str, Any]:
    """Line crossings and zone entries/exits/dwell as sums, so segments add up."""
    return {
        "lines": {x.config.name: {d: dict(c) for d, c in x.counts.items()}
                  for x in analytics.lines},
        "zones": {z.config.name: {"entered": z.entered, "exits": z.exits,
                                  "dwell_total_s": z.dwell_total_s} for z in analytics.zones},
    }

"""How far tracking and counting can be trusted, measured where the truth is known.

``testsrc://`` draws every vehicle itself, so it knows each one's box and identity in every
frame (``SceneGenerator.truth``). This module runs a model and the analytics over those frames
and scores them against that truth:

- MOTA and IDF1 (and ID switches, misses, false positives) from ``trackers.eval``, Roboflow's
  maintained re-implementation of TrackEval's CLEAR and Identity metrics (motmetrics 1.4.0,
  its last release, calls ``np.asfarray``, removed in NumPy 2);
- the count error: the same lines and zones are counted once on the tracker's tracks and once
  on the ground-truth tracks (what a perfect tracker gives: one that follows every object from
  the first frame it can be seen, through any occlusion after it), and the totals compared;
- the count events: totals let errors cancel (a missed car and a parked bus counted as it was
  uncovered sum to 0), so each counted event (a line crossing in a direction, a zone entry) is
  also matched to one of the perfect tracker's: the same line direction or zone, the vehicle
  the tracked box covers when it is counted (the truth box it overlaps most, IoU >= 0.3,
  hidden ones included), within ``EVENT_TOLERANCE_S``. What stays unmatched is a missed or a
  false count. An unmatched event in the last ``EVENT_TOLERANCE_S`` of the sequence is left
  out: its partner may come just after the cut.

What a detector cannot see is not held against it: an object more than 70% hidden (by a nearer
one or the frame's edge) is neither a miss nor, if a track covers it, a false positive. That is
the rule the training labels follow (``edgekit.data.synth``) and how KITTI's and MOTChallenge's
evaluations treat don't-care and distractor boxes: the tracked box matched to one (Hungarian,
IoU >= ``iou``) is dropped before scoring.

Frames are rendered and processed one by one, as fast as the model goes: the score says how
good the tracking is, not how fast (benchmarks/pipeline_throughput.py measures that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import require
from ..types import Frame
from .config import AnalyticsConfig, tracking_thresholds


@dataclass(frozen=True, kw_only=True)
class TrackingScore:
    """Tracking and counting quality on a generated sequence.

    Attributes:
        frames: Frames scored.
        mota: Multiple Object Tracking Accuracy, (TP - FP - IDSW) / GT boxes.
        idf1: Identity F1: the share of boxes given the right identity.
        id_switches: Times a ground-truth vehicle's track id changed.
        false_positives: Tracked boxes matching no vehicle.
        misses: Vehicle boxes no track covered.
        truth_tracks: Vehicle passes in the sequence.
        tracker_ids: Distinct track ids the tracker gave out.
        expected: Line and zone totals on the ground-truth tracks.
        measured: The same totals on the tracker's tracks.
        count_error: Sum of |measured - expected| over every line direction and zone.
        events_expected: Count events of the perfect tracker (lines and zones together).
        events_missed: Of those, the ones no counted event of the tracker matched.
        events_false: The tracker's count events that matched none of the perfect tracker's.
    """

    frames: int
    mota: float
    idf1: float
    id_switches: int
    false_positives: int
    misses: int
    truth_tracks: int
    tracker_ids: int
    expected: dict[str, int] = field(default_factory=dict)
    measured: dict[str, int] = field(default_factory=dict)
    count_error: int = 0
    events_expected: int = 0
    events_missed: int = 0
    events_false: int = 0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def totals(counts: dict[str, Any]) -> dict[str, int]:
    """Flat totals of ``Analytics.counts()``: ``line:NAME:DIRECTION`` and ``zone:NAME``."""
    flat = {f"line:{name}:{direction}": sum(by_class.values())
            for name, directions in counts.get("lines", {}).items()
            for direction, by_class in directions.items()}
    flat.update({f"zone:{name}": z["entered"] for name, z in counts.get("zones", {}).items()})
    return flat


# How far apart in time a counted event and the perfect tracker's may be and still match: a
# track confirmed a few frames late, or seen on the far side only after an occlusion, counts
# late.
EVENT_TOLERANCE_S = 2.0


@dataclass(frozen=True, slots=True)
class _Event:
    key: str  # "line:NAME:DIRECTION" or "zone:NAME", as ``totals``
    object_id: int  # the truth object counted (-1: the tracked box covers none)
    ts: int


def _key(event: dict) -> str | None:
    if event["type"] == "line_crossing":
        return f"line:{event['line']}:{event['direction']}"
    return f"zone:{event['zone']}" if event["type"] == "zone_enter" else None


def _events(events: list[dict], ts: int, boxes: np.ndarray, ids: np.ndarray,
            truth: Any, box_iou: Any) -> list[_Event]:
    """Count events of one frame, each with the truth object it counted: the truth box the
    event's tracked box overlaps most."""
    out = []
    for event in events:
        key = _key(event)
        if key is None:
            continue
        rows = np.flatnonzero(ids == event["tracker_id"])
        overlap = (box_iou(boxes[rows[:1]], truth.xyxy)[0] if len(rows) and len(truth.xyxy)
                   else np.zeros(1))
        best = int(np.argmax(overlap))
        out.append(_Event(key, int(truth.track_id[best]) if overlap[best] >= 0.3 else -1, ts))
    return out


def _truth_events(analytics: Any, sv: Any, size: tuple[int, int], xyxy: np.ndarray,
                  class_id: np.ndarray, ids: np.ndarray, stamp: int) -> list[_Event]:
    """Count events of one frame's boxes whose ids are the truth's (a perfect tracker's): each
    event's own id is the object it counted."""
    tracked = sv.Detections(xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4),
                            class_id=np.asarray(class_id, int),
                            tracker_id=np.asarray(ids, int),
                            confidence=np.ones(len(ids), np.float32))
    return [_Event(key, int(event["tracker_id"]), stamp)
            for event in analytics.count(size, tracked, stamp)
            if (key := _key(event)) is not None]


def _perfect_events(analytics: Any, sv: Any, size: tuple[int, int], truth: Any,
                    followed: set[int], stamp: int) -> list[_Event]:
    """Count events of the perfect tracker, which follows every object from the first frame
    it is labelled (``followed``, updated here) through any occlusion after it."""
    followed.update(truth.track_id[truth.labelled].tolist())
    shown = np.isin(truth.track_id, list(followed))
    return _truth_events(analytics, sv, size, truth.xyxy[shown], truth.class_id[shown],
                         truth.track_id[shown], stamp)


def match_events(expected: list[_Event], measured: list[_Event], *, end_ns: int,
                 tolerance_s: float = EVENT_TOLERANCE_S) -> tuple[int, int, int]:
    """(expected, missed, false) count events: each measured event matches the nearest in
    time unmatched expected one of the same key and object within ``tolerance_s``."""
    tol = int(tolerance_s * 1e9)
    free = list(expected)
    false = 0
    for event in sorted(measured, key=lambda e: e.ts):
        near = [e for e in free if e.key == event.key and e.object_id == event.object_id
                and abs(e.ts - event.ts) <= tol]
        if near:
            free.remove(min(near, key=lambda e: abs(e.ts - event.ts)))
        elif event.ts <= end_ns - tol:
            false += 1
    missed = sum(e.ts <= end_ns - tol for e in free)
    return len(expected) - len(free) + missed, missed, false


def _not_on(box_iou: Any, boxes: np.ndarray, truth: np.ndarray, scored: np.ndarray,
            iou: float) -> np.ndarray:
    """Which tracked boxes to score: all but those matched (Hungarian, IoU >= ``iou``) to a
    truth box that is not scored (hidden, or a distractor)."""
    keep = np.ones(len(boxes), bool)
    if not len(boxes) or scored.all():
        return keep
    from scipy.optimize import linear_sum_assignment

    overlap = box_iou(truth, boxes)
    rows, cols = linear_sum_assignment(-overlap)
    for r, c in zip(rows, cols, strict=True):
        if overlap[r, c] >= iou and not scored[r]:
            keep[c] = False
    return keep


class _Sequence:
    """A sequence's per-frame ids and overlaps, as trackers.eval's CLEAR and Identity metrics
    take them."""

    def __init__(self, trackers_eval: Any, iou: float) -> None:
        self.eval, self.iou = trackers_eval, iou
        self.gt_ids: list[np.ndarray] = []
        self.hyp_ids: list[np.ndarray] = []
        self.similarity: list[np.ndarray] = []

    def add(self, gt_box: np.ndarray, gt_id: np.ndarray, boxes: np.ndarray,
            hyp: np.ndarray) -> None:
        self.gt_ids.append(gt_id)
        self.hyp_ids.append(hyp)
        self.similarity.append(self.eval.box_iou(gt_box, boxes) if len(gt_box) and len(boxes)
                               else np.zeros((len(gt_box), len(boxes))))

    def metrics(self) -> tuple[dict, dict]:
        """(CLEAR, Identity) metrics of the whole sequence."""
        args = (self.gt_ids, self.hyp_ids, self.similarity)
        return (self.eval.compute_clear_metrics(*args, threshold=self.iou),
                self.eval.compute_identity_metrics(*args, threshold=self.iou))


def score_testsrc(model: Any, config: AnalyticsConfig, *, width: int = 640, height: int = 480,
                  fps: float = 15.0, seed: int = 3, objects: int = 5, frames: int = 225,
                  iou: float = 0.5, moving_only: bool = False) -> TrackingScore:
    """Runs ``model`` and the analytics of ``config`` over a generated sequence and scores it.

    Args:
        model: A Detector (or any callable image -> Detections with ``labels``).
        config: Tracker settings, lines and zones (as ``edgekit run --config``).
        width: Frame width, as ``testsrc://?width=``.
        height: Frame height.
        fps: Frame rate the timestamps follow (the tracker sees a steady camera).
        seed: Scene seed, as ``testsrc://?seed=``.
        objects: Vehicles, as ``testsrc://?objects=``.
        frames: Frames to score (15 s at 15 fps: 225).
        iou: Overlap for a tracked box to match a vehicle (MOT's usual 0.5).
        moving_only: Score the moving vehicles only: the parked and standing objects become
            ignore regions (a track on one is neither right nor wrong), as MOT benchmarks do
            with distractors. Counting is unchanged (a parked car in a zone is counted).
    """
    sv = require("supervision", extra="pipeline", purpose="scoring tracking")
    trackers_eval = require("trackers.eval", package="trackers", extra="pipeline",
                            purpose="MOTA/IDF1")
    from ..sources.testsrc import STILL_IDS, SceneGenerator
    from .analytics import Analytics

    scene = SceneGenerator(width=width, height=height, seed=seed, objects=objects)
    detect, report = _detect(model, config)
    tracked = Analytics(config, list(model.labels))
    perfect = Analytics(config, list(model.labels))
    sequence = _Sequence(trackers_eval, iou)
    followed: set[int] = set()  # objects seen once: the perfect tracker keeps them
    counted: list[_Event] = []
    truly: list[_Event] = []
    for index in range(1, frames + 1):  # TestSource renders from frame 1
        image, truth = scene.frame(index)
        stamp = int(index * 1e9 / fps)
        detections, events = tracked.update(Frame(image, stamp, index, "testsrc"),
                                            detect(image), conf=report)
        ids = (detections.tracker_id if detections.tracker_id is not None
               else np.full(len(detections.xyxy), -1))
        counted += _events(events, stamp, detections.xyxy, ids, truth, trackers_eval.box_iou)
        boxes, hyp = detections.xyxy[ids >= 0], ids[ids >= 0]
        scored = truth.labelled & ~(moving_only & (truth.track_id >= STILL_IDS))
        keep = _not_on(trackers_eval.box_iou, boxes, truth.xyxy, scored, iou)
        boxes, hyp = boxes[keep], hyp[keep]
        sequence.add(truth.xyxy[scored], truth.track_id[scored], boxes, hyp)
        truly += _perfect_events(perfect, sv, (width, height), truth, followed, stamp)
    clear, identity = sequence.metrics()
    expected, measured = totals(perfect.counts()), totals(tracked.counts())
    events_expected, missed, false = match_events(truly, counted,
                                                  end_ns=int(frames * 1e9 / fps))
    return TrackingScore(
        frames=frames, mota=float(clear["MOTA"]), idf1=float(identity["IDF1"]),
        id_switches=int(clear["IDSW"]), false_positives=int(clear["CLR_FP"]),
        misses=int(clear["CLR_FN"]),
        truth_tracks=len(set(np.concatenate(sequence.gt_ids).tolist())),
        tracker_ids=(len(set(np.concatenate(sequence.hyp_ids).tolist()))
                     if sequence.hyp_ids else 0),
        expected=expected, measured=measured,
        count_error=sum(abs(measured.get(k, 0) - v) for k, v in expected.items()),
        events_expected=events_expected, events_missed=missed, events_false=false)


def _detect(model: Any, config: AnalyticsConfig | None) -> tuple[Any, float | None]:
    """(image -> Detections as the tracker of ``config`` gets them, the model's own score
    threshold where that decodes lower, else None), as the pipeline runs a Detector."""
    manifest = getattr(model, "manifest", None)
    if config is None or config.tracker.detection_conf is None or manifest is None:
        return model, None
    decode, report = tracking_thresholds(manifest.output.conf_threshold,
                                         config.tracker.detection_conf)
    return (lambda image: model(image, conf=decode)), report


@dataclass(frozen=True, kw_only=True)
class Ceiling:
    """What a perfect tracker reaches with a detector's boxes (``detector_ceiling``).

    Attributes:
        mota: Its MOTA.
        idf1: Its IDF1.
        events_expected: Count events of the perfect tracker that sees every object.
        events_missed: Of those, the ones it misses with only the detector's boxes.
        events_false: Its count events on the detector's boxes that match none of those.
    """

    mota: float
    idf1: float
    events_expected: int = 0
    events_missed: int = 0
    events_false: int = 0


def detector_ceiling(model: Any, *, width: int = 640, height: int = 480, fps: float = 15.0,
                     seed: int = 3, objects: int = 5, frames: int = 225, iou: float = 0.5,
                     moving_only: bool = False,
                     config: AnalyticsConfig | None = None) -> Ceiling:
    """What a perfect tracker reaches given ``model``'s boxes: every box on an object
    (Hungarian, IoU >= ``iou``) gets that object's id, every other box is dropped. No tracker
    that reports only detected boxes can score higher: what stays between this and 1.0 is
    the detector's misses, not the tracking. ``config``: boxes as its tracker gets them (down
    to ``tracker.detection_conf``), and its lines and zones counted on those boxes and ids,
    scored as ``score_testsrc`` scores count events: the count events that even perfect
    tracking gets wrong with this detector.
    """
    trackers_eval = require("trackers.eval", package="trackers", extra="pipeline",
                            purpose="MOTA/IDF1")
    from scipy.optimize import linear_sum_assignment

    from ..sources.testsrc import STILL_IDS, SceneGenerator

    scene = SceneGenerator(width=width, height=height, seed=seed, objects=objects)
    sequence = _Sequence(trackers_eval, iou)
    detect, _ = _detect(model, config)
    counting = config is not None and (config.lines or config.zones)
    if counting:
        from .analytics import Analytics

        sv = require("supervision", extra="pipeline", purpose="scoring counts")
        perfect = Analytics(config, list(model.labels))
        ceiling = Analytics(config, list(model.labels))
    followed: set[int] = set()
    truly: list[_Event] = []
    counted: list[_Event] = []
    for index in range(1, frames + 1):
        image, truth = scene.frame(index)
        detections = detect(image)
        boxes = detections.xyxy
        scored = truth.labelled & ~(moving_only & (truth.track_id >= STILL_IDS))
        hyp, kept, counted_rows, counted_ids = [], [], [], []
        if len(boxes) and len(truth.xyxy):
            overlap = trackers_eval.box_iou(truth.xyxy, boxes)
            for r, c in zip(*linear_sum_assignment(-overlap), strict=True):
                if overlap[r, c] < iou:
                    continue
                if scored[r]:
                    hyp.append(truth.track_id[r])
                    kept.append(boxes[c])
                # Counted as the real tracker's boxes are: on hidden objects too, in the
                # detector's class.
                counted_rows.append(c)
                counted_ids.append(int(truth.track_id[r]))
        sequence.add(truth.xyxy[scored], truth.track_id[scored],
                     np.asarray(kept, np.float32).reshape(-1, 4), np.asarray(hyp, np.int64))
        if counting:
            stamp = int(index * 1e9 / fps)
            truly += _perfect_events(perfect, sv, (width, height), truth, followed, stamp)
            counted += _truth_events(ceiling, sv, (width, height), boxes[counted_rows],
                                     np.asarray(detections.class_id)[counted_rows],
                                     np.array(counted_ids, int), stamp)
    clear, identity = sequence.metrics()
    expected, missed, false = (match_events(truly, counted, end_ns=int(frames * 1e9 / fps))
                               if counting else (0, 0, 0))
    return Ceiling(mota=float(clear["MOTA"]), idf1=float(identity["IDF1"]),
                   events_expected=expected, events_missed=missed, events_false=false)

"""The trackers a run config can name (``tracker: {type: ocsort, ...}``), all from Roboflow's
maintained ``trackers`` package, and how each is built.

One registry entry per type: the package's class, the settings a config may give it (besides
the shared ``lost_track_buffer``, ``frame_rate`` and ``minimum_consecutive_frames``), edgekit's
own defaults where they differ from the package's, and whether it looks at the image (camera
motion compensation). None of them needs a downloaded model (no ReID).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import require

# Settings every type takes, as TrackerConfig fields.
SHARED = ("lost_track_buffer", "frame_rate", "minimum_consecutive_frames")

_SORT = ("track_activation_threshold", "minimum_iou_threshold", "iou")
_BOT = ("iou", "track_activation_threshold", "high_conf_det_threshold",
        "minimum_iou_threshold_first_assoc", "minimum_iou_threshold_second_assoc",
        "minimum_iou_threshold_unconfirmed_assoc", "instant_first_frame_activation")
_CMC = ("enable_cmc", "cmc_method", "cmc_downscale")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerKind:
    """How to build one tracker type."""

    cls: str  # the class in ``trackers``
    settings: tuple[str, ...]  # its own settings a config may give
    defaults: dict[str, Any] = field(default_factory=dict)  # edgekit's, over the package's
    uses_frame: bool = False  # update() is given the image (camera motion compensation)


TRACKERS: dict[str, TrackerKind] = {
    "bytetrack": TrackerKind(
        cls="ByteTrackTracker",
        settings=(*_SORT, "high_conf_det_threshold"),
        # Low-confidence detections (a half-hidden car) still extend a track; IoU 0.1 keeps
        # one whose Kalman prediction lags a small, fast box.
        defaults={"track_activation_threshold": 0.25, "high_conf_det_threshold": 0.5,
                  "minimum_iou_threshold": 0.1}),
    "sort": TrackerKind(cls="SORTTracker", settings=_SORT),
    "ocsort": TrackerKind(
        cls="OCSORTTracker",
        settings=("iou", "minimum_iou_threshold", "direction_consistency_weight",
                  "high_conf_det_threshold", "delta_t")),
    "botsort": TrackerKind(cls="BoTSORTTracker", settings=(*_BOT, *_CMC),
                           # A fixed camera: nothing to compensate, and optical flow costs CPU.
                           defaults={"enable_cmc": False}, uses_frame=True),
    "cbiou": TrackerKind(cls="CBIoUTracker",
                         settings=(*_BOT, "buffer_ratio_first", "buffer_ratio_second")),
    "mcbyte": TrackerKind(cls="McByteTracker", settings=(*_BOT, *_CMC),
                          defaults={"enable_cmc": False}, uses_frame=True),
}


# The overlap measures a tracker's ``iou`` setting may name: the package's classes. The
# signed ones (giou, diou, ciou) are mapped to 0-1 by the trackers before their thresholds
# apply ((x + 1) / 2), so their minimum_iou_threshold* sit near 0.5, not 0.1.
IOU = {"iou": "IoU", "biou": "BIoU", "giou": "GIoU", "diou": "DIoU", "ciou": "CIoU"}


def build_tracker(config: Any) -> tuple[Any, bool]:
    """The tracker a TrackerConfig names, and whether its update() wants the image."""
    kind = TRACKERS[config.type]
    trackers = require("trackers", extra="pipeline", purpose=f"{config.type} tracking")
    settings = {**kind.defaults, **dict(config.options)}
    if "iou" in settings:
        settings["iou"] = getattr(trackers, IOU[settings["iou"]])()
    settings.update({name: getattr(config, name) for name in SHARED})
    uses_frame = kind.uses_frame and bool(settings.get("enable_cmc", False))
    tracker = (PerClass(lambda: getattr(trackers, kind.cls)(**settings)) if config.per_class
               else getattr(trackers, kind.cls)(**settings))
    return tracker, uses_frame


class PerClass:
    """One tracker per class, so a track only ever follows boxes of its own class.

    The ``trackers`` package associates by IoU whatever the class: on testsrc:// a parked
    bicycle that passing cars half covered was handed from car track to car track (seed 3:
    one bicycle, 7 ids, 6 of them also a car's), and a car's track went on as the truck that
    hid it. Each class's tracker numbers its own tracks; this gives them one numbering.
    A class the detector stops seeing still gets empty updates, so its lost tracks age.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._sv = require("supervision", extra="pipeline", purpose="per-class tracking")
        self._make = make
        self._trackers: dict[int, Any] = {}
        self._ids: dict[tuple[int, int], int] = {}  # (class, its tracker's id) -> ours

    def update(self, detections: Any, **kwargs: Any) -> Any:
        classes = {int(c) for c in detections.class_id} if len(detections) else set()
        parts = []
        for cid in sorted(classes | set(self._trackers)):
            tracker = self._trackers.get(cid)
            if tracker is None:
                tracker = self._trackers[cid] = self._make()
            part = tracker.update(detections[detections.class_id == cid], **kwargs)
            if len(part):
                part.tracker_id = np.array(
                    [self._ids.setdefault((cid, int(t)), len(self._ids) + 1) if t >= 0 else -1
                     for t in part.tracker_id], int)
                parts.append(part)
        if parts:
            return self._sv.Detections.merge(parts)
        empty = self._sv.Detections.empty()
        empty.tracker_id = np.array([], int)
        return empty

"""Ids for reported boxes that stand still where no track is (``tracker.persist_frames``).

ByteTrack and its kin start tracks only from boxes scored at ``high_conf_det_threshold`` or
more; a vehicle the detector sees in every frame at 0.3-0.45 (parked half behind another, a
small far one) is reported and drawn, but never gets an id, so no zone counts it
(testsrc:// seed 54, reference detector: a parked motorcycle scored 0.25-0.5 in all 225
frames, untracked; with this, IDF1 0.903 -> 0.915). It works the same under every tracker
type: it looks only at the boxes a tracker reports with no id.

Such a box, once it has stood at one place for ``frames`` frames in a row, gets an id of its
own here, held while a box of its class stands there again. The tracker never sees it as a
track: handing it to the tracker as a high-scored box (edgekit's first way) made it a track
like any other, and the tracker then carried that id off on the next same-class vehicle
driving through its place (testsrc:// seed 21). Where the detector later scores it high and
the tracker starts a track on it, the rejoin (``rejoin_s``) gives that track this id.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .rejoin import AT_PLACE, box_iou

# IoU of two frames' boxes of one still object, and of a box with the place it stands at.
_SAME = AT_PLACE
# A box overlapping a tracked one this much is that object's second box (another class's,
# or a part of it), not an object of its own. At 0.5, such boxes of tracked vehicles earned
# ids of their own, and IDF1 fell by 0.03 on testsrc:// seeds 55, 60 and 64 (reference).
_TRACKED = 0.3


@dataclass(slots=True)
class _Place:
    class_id: int
    box: np.ndarray  # where it stands: the first box of the run that earned it
    last_ns: int


class Standing:
    """Maps one frame's tracker ids to the ids edgekit reports, giving ids to standing boxes.

    All ids are renumbered into one sequence, so the standing ones never collide with the
    tracker's own.

    Args:
        frames: Frames in a row an untracked box must stand at one place (IoU >= 0.5 with
            the frame before's and with the first of the run) before it gets an id.
        keep_s: How long an id is kept for its place after its box was last seen there.
    """

    def __init__(self, *, frames: int, keep_s: float) -> None:
        self.frames, self.keep_ns = frames, int(keep_s * 1e9)
        self._places: dict[int, _Place] = {}  # our id -> where it stands
        # Untracked boxes of the last frame: (class, box, frames in a row, first box).
        self._runs: list[tuple[int, np.ndarray, int, np.ndarray]] = []
        self._ids: dict[int, tuple[int, int]] = {}  # tracker id -> (ours, last seen ns)
        self._new_id = itertools.count(1).__next__  # our ids, one sequence for both kinds

    def __call__(self, xyxy: np.ndarray, class_id: np.ndarray, tracker_id: np.ndarray,
                 ts: int) -> np.ndarray:
        """The reported ids of one frame's boxes (-1: no id)."""
        out = np.full(len(tracker_id), -1, np.int64)
        for row, raw in enumerate(tracker_id.tolist()):
            if raw >= 0:
                ours = self._ids[raw][0] if raw in self._ids else self._new_id()
                self._ids[raw] = (ours, ts)
                out[row] = ours
        tracked = [np.asarray(xyxy[row], np.float64) for row in np.flatnonzero(out >= 0)]
        runs, self._runs = self._runs, []
        in_view: set[int] = set()
        for row in np.flatnonzero(out < 0):
            box, cid = np.asarray(xyxy[row], np.float64), int(class_id[row])
            if any(box_iou(box, other) >= _TRACKED for other in tracked):
                continue
            place = max(((pid, box_iou(box, p.box)) for pid, p in self._places.items()
                         if p.class_id == cid and pid not in in_view),
                        key=lambda x: x[1], default=(None, 0.0))
            if place[0] is not None and place[1] >= _SAME:
                out[row] = place[0]
            else:
                n, first = max(((n, b0) for c, b, n, b0 in runs if c == cid
                                and box_iou(box, b) >= _SAME and box_iou(box, b0) >= _SAME),
                               key=lambda r: r[0], default=(0, box))
                if n + 1 < self.frames:
                    self._runs.append((cid, box, n + 1, first))
                    continue
                out[row] = self._new_id()
                self._places[int(out[row])] = _Place(cid, first, ts)
            in_view.add(int(out[row]))
            self._places[int(out[row])].last_ns = ts
        # Forget places and tracker ids unseen for keep_s: memory stays bounded.
        self._places = {pid: p for pid, p in self._places.items()
                        if ts - p.last_ns <= self.keep_ns}
        self._ids = {raw: v for raw, v in self._ids.items() if ts - v[1] <= self.keep_ns}
        return out

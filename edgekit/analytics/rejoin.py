"""Online track stitching: a new track that starts where a lost one of the same class was
heading continues that one's id.

The trackers match by IoU against a Kalman prediction and give up after ``lost_track_buffer``;
a vehicle hidden longer than that (a parked car behind a passing bus, a car behind a truck
in the nearer lane) comes back under a new id, and a counter counts it again, or never sees
it cross. Here each id's last box and velocity are remembered for ``within_s`` seconds after
it was last seen; when the tracker confirms a new id, the lost id of the same class whose box,
moved on at that velocity, overlaps the new box best (IoU >= ``min_iou``) is taken over. It
looks at nothing later than the current frame, so it runs live, as counting does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

# Box centres remembered per id, for its velocity: about half a second at 15 fps.
_HISTORY = 8
# A track whose centre moved less than this share of its size over that history is still. A
# slow bus (11 km/h on testsrc://) moves 0.13 of its length in that time and may be taken
# for still: then it is looked for where it was, and not found (no stitch, as without this).
# A test on the box's edges (covering moves one, driving both) was tried: vehicles driving
# into an occlusion look still by it, and IDF1 fell (seed 5: 0.646 -> 0.584).
_STILL = 0.2
# How long an id must stand still before its place is its own (Rejoin._swap_back).
# 1.0 and 1.5 s measured alike on testsrc:// (reference detector, seeds 3-34); 1.5 s is the
# more careful one.
_STAND_NS = int(1.5e9)
# An id whose box overlaps where it stood less than this has left its place.
_LEFT = 0.3
# A box that overlaps where an object stands this much is that object there (IoU).
AT_PLACE = 0.5
# A box this close to the frame's edge is cut by it.
_EDGE_PX = 2.0
# Boxes of a stay kept for where it stands (their median): a few seconds at 15-30 fps.
_STAY = 64
# A box the frame's edge cuts that shrank into that edge by this share of its largest width
# there (height, at the top or bottom edge), then grew out of it again by _BACK of it (and at
# least _TURN_PX both ways), is another vehicle (Rejoin._turned_back). Chosen on testsrc://
# seeds 6-64 with a first version of the rule (reference IDF1 0.891 without it: 0.15 and 0.08
# gave 0.898, 0.25 and 0.1 0.900, 0.5 and 0.1 0.897); the rule as it is gives 0.898.
_GONE, _BACK, _TURN_PX = 0.25, 0.1, 6.0


@dataclass(slots=True)
class _Seen:
    class_id: int
    last_ns: int
    boxes: deque = field(default_factory=lambda: deque(maxlen=_HISTORY))  # (ns, xyxy)
    anchor: np.ndarray | None = None  # where it last stood still (the stay's median box)
    anchor_ns: int = 0  # when it was last seen still there
    still_since: tuple[int, np.ndarray] | None = None  # (ns, centre) where the stay began
    stay: deque = field(default_factory=lambda: deque(maxlen=_STAY))  # the stay's boxes
    frame: tuple[int, int] | None = None  # the frame's (width, height)
    first: np.ndarray | None = None  # its first box (the lead-in's first, if it had one)

    def _recent(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """The recent boxes, the object's move from the first to the last (``_move``), and
        whether it stood still: that move under ``_STILL`` of their size on both axes (for a
        box the frame's edge cuts: each edge's move, under ``_STILL`` of its smaller side)."""
        boxes = np.array([b for _, b in self.boxes])
        size = (boxes[:, 2:] - boxes[:, :2]).max(axis=0)
        cut = _cut(boxes, self.frame)
        move = _move(boxes, cut)
        if cut.any():
            # Cut by the frame's edge: the box of a vehicle driving in or out keeps one edge
            # on the frame's and its centre moves at half its speed, so a long truck looked
            # still, and the next truck through that edge took its id (testsrc:// seed 3).
            # Still here means no edge moved more than _STILL of the box's smaller side.
            edges = np.abs(boxes[-1] - boxes[0])
            return boxes, move, bool((edges < _STILL * size.min()).all())
        return boxes, move, bool((np.abs(move) < _STILL * size).all())

    def still(self) -> np.ndarray | None:
        """Its largest recent box, if it stood still over a full history; else None."""
        if len(self.boxes) < _HISTORY:
            return None
        boxes, _, still = self._recent()
        return _largest(boxes) if still else None

    def stands(self, ts: int, within_ns: int) -> bool:
        """Whether it has a place of its own (``anchor``), seen still there lately."""
        return self.anchor is not None and ts - self.anchor_ns <= within_ns

    def predicted(self, ts: int, within_ns: int = 0) -> np.ndarray:
        """Where the object should be at time ``ts``.

        With ``within_ns``, one that stood (``stands``) up to then, and was last seen at its
        place (IoU >= ``_LEFT``), is at its place: a parked bus that a passing truck covered
        from one side had a box whose centre ran half its width in its last frames, so it
        was not still over the history, and was looked for where that run led (testsrc://
        seed 21: it came back under a new id). Else a still one (its centre moved less than
        ``_STILL`` of its size over the history) is where its largest recent box was: a
        parked car's box shrinks or swells as a passing vehicle covers it, and the drift of
        its centre, carried over the second or two it stays hidden, put it a car's length
        away (testsrc:// seed 5). A moving one is its last box moved on at the velocity of
        its centre over the history.
        """
        (t0, _), (t1, last) = self.boxes[0], self.boxes[-1]
        if within_ns and self.stands(t1, within_ns) and box_iou(last, self.anchor) >= _LEFT:
            return self.anchor
        boxes, move, still = self._recent()
        if t1 <= t0 or still:
            return _largest(boxes)
        return last + np.tile(move, 2) * (ts - t1) / (t1 - t0)


def _move(boxes: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """How far an object moved over some xyxy boxes, (x, y): its centre's move, except along
    an axis where the frame's edge cuts its boxes on one side only (``cut``, from ``_cut``):
    there, the other side's.

    A vehicle driving in or out keeps its box's edge on the frame's, and the box's centre
    moves at half its speed: looked for where the centre was heading, a car that drove in at
    the right edge and was hidden for ten frames was 110 px behind where it came back, and
    came back under a new id on the far side of the line (testsrc:// seed 118: five
    westbound vehicles not counted).
    """
    move = (boxes[-1, :2] + boxes[-1, 2:] - boxes[0, :2] - boxes[0, 2:]) / 2
    for axis in (0, 1):
        if cut[axis] != cut[axis + 2]:
            free = axis if cut[axis + 2] else axis + 2
            move[axis] = boxes[-1, free] - boxes[0, free]
    return move


def _cut(boxes: np.ndarray, frame: tuple[int, int] | None) -> np.ndarray:
    """Per edge of a (width, height) frame, by the index of the box coordinate on it (0 left,
    1 top, 2 right, 3 bottom): whether it cuts any of some xyxy boxes. None cut where the
    frame's size is not known."""
    if frame is None:
        return np.zeros(4, bool)
    boxes = np.asarray(boxes).reshape(-1, 4)
    return np.concatenate([(boxes[:, :2] <= _EDGE_PX).any(axis=0),
                           (boxes[:, 2:] >= np.asarray(frame) - _EDGE_PX).any(axis=0)])


def _cut_sides(box: np.ndarray, frame: tuple[int, int]) -> list[int]:
    """The frame's edges that cut one xyxy box (``_cut``'s indices)."""
    return np.flatnonzero(_cut(box, frame)).tolist()


def _extent(boxes: np.ndarray, side: int, frame: tuple[int, int]) -> np.ndarray:
    """How far boxes cut by one edge of the frame reach into it, from that edge."""
    if side < 2:  # left or top: the far edge's coordinate
        return boxes[:, side + 2]
    return frame[side - 2] - boxes[:, side - 2]


def _closest(box: np.ndarray, candidates, floor: float) -> int:
    """The key of the (key, xyxy) candidate that a box overlaps most, by IoU >= ``floor``;
    -1 if none does."""
    best, best_iou = -1, floor
    for key, other in candidates:
        overlap = box_iou(box, other)
        if overlap >= best_iou:
            best, best_iou = key, overlap
    return best


def _largest(boxes: np.ndarray) -> np.ndarray:
    """The largest of some xyxy boxes."""
    return boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xyxy boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class Rejoin:
    """Maps the tracker's ids to stitched ones, frame by frame.

    Args:
        within_s: How long after an id was last seen a new track may take it over.
        min_iou: The least overlap of the new box with the lost one's predicted box.
        still: Give a still object's id back to it where a passing vehicle carried it off
            (``_swap_back``).
    """

    def __init__(self, *, within_s: float, min_iou: float, still: bool = False) -> None:
        self.within_ns, self.min_iou, self.still = int(within_s * 1e9), min_iou, still
        self._alias: dict[int, int] = {}  # tracker id -> the id it continues (maybe itself)
        self._seen: dict[int, _Seen] = {}  # stitched id -> where it was last seen
        # The last frame's boxes no id held yet, each with the boxes of the frames before
        # that led to it: (class, its boxes as (ns, xyxy)).
        self._unconfirmed: list[tuple[int, list]] = []
        self._top = -1  # the highest id given out: a new one is above it

    def _new_id(self, raw: int) -> int:
        """The id of a tracker id that continues none: itself, unless a split gave it out."""
        self._top = raw if raw > self._top else self._top + 1
        return self._top

    def __call__(self, xyxy: np.ndarray, class_id: np.ndarray, tracker_id: np.ndarray,
                 ts: int, frame: tuple[int, int] | None = None,
                 weak: np.ndarray | None = None) -> np.ndarray:
        """The stitched ids of one frame's tracked boxes (-1 stays -1, unless ``_reclaim``
        gives it an id).

        ``weak``: rows scored under the model's threshold that no track took; they may only
        be reclaimed (the caller drops those that stay -1), and lead no new track in.
        """
        if weak is None:
            weak = np.zeros(len(tracker_id), bool)
        out = np.array([self._alias.get(int(t), -1) for t in tracker_id], np.int64)
        new = [r for r, t in enumerate(tracker_id) if t >= 0 and int(t) not in self._alias]
        taken = {int(t) for t in out if t >= 0}  # ids in view now cannot be taken over
        for row in new:
            raw, cid = int(tracker_id[row]), int(class_id[row])
            best = _closest(xyxy[row], (
                (sid, seen.predicted(ts, self.within_ns if self.still else 0))
                for sid, seen in self._seen.items()
                if sid not in taken and seen.class_id == cid
                and 0 < ts - seen.last_ns <= self.within_ns), self.min_iou)
            if best < 0:
                best = self._new_id(raw)
            else:
                # The tracker keeps a lost track longer than the rejoin waits for it
                # (lost_track_buffer 5 s, rejoin_s 3 s): found again once this track has
                # taken its id over (on another vehicle, by a stale prediction), the old
                # track must come back as a new one, not with the same id on a second box
                # (testsrc:// seed 118).
                for other in [r for r, sid in self._alias.items() if sid == best]:
                    del self._alias[other]
            self._alias[raw] = best
            taken.add(best)
            out[row] = best
        if self.still:
            self._swap_back(xyxy, class_id, tracker_id, out, ts)
            self._reclaim(xyxy, class_id, out, ts)
        if frame is not None:
            self._turned_back(xyxy, tracker_id, out, ts, frame)
        led = self._lead_in(xyxy, class_id, out, ts, weak)
        for row, sid in enumerate(out.tolist()):
            if sid < 0:
                continue
            seen = self._seen.get(sid)
            if seen is None:
                lead = led.get(row, [])
                seen = self._seen[sid] = _Seen(
                    int(class_id[row]), ts,
                    first=lead[0][1] if lead else np.asarray(xyxy[row], np.float64))
                seen.boxes.extend(lead)
            seen.last_ns = ts
            seen.frame = frame
            seen.boxes.append((ts, np.asarray(xyxy[row], np.float64)))
            self._stand(seen, ts)
        # Forget ids lost for longer than within_s (memory stays bounded): a tracker id
        # coming back after that is a new one.
        gone = {sid for sid, seen in self._seen.items() if ts - seen.last_ns > self.within_ns}
        for sid in gone:
            del self._seen[sid]
        if gone:
            self._alias = {raw: sid for raw, sid in self._alias.items() if sid not in gone}
        return out

    def _lead_in(self, xyxy: np.ndarray, class_id: np.ndarray, out: np.ndarray,
                 ts: int, weak: np.ndarray) -> dict[int, list]:
        """The boxes that led to each row with no id or a new one: the chain of unconfirmed
        boxes (id -1) of the frames before that it continues (same class, IoU >= ``_LEFT``
        frame to frame). A row of an id already seen needs none: its history is its own.

        A new id's history starts with them, so that it has a velocity from its first
        frame. A fast motorcycle that traffic hides most of the time is seen for three or
        four frames, then hidden for a second: its track was confirmed only on the last of
        those frames, and with one box it had no velocity, so the rejoin looked for it where
        it was last seen, and it came back under a new id on the far side of the line
        (testsrc:// seed 64: 23 count events missed, 14 with this).
        """
        led: dict[int, list] = {}
        last, self._unconfirmed = self._unconfirmed, []
        for row in range(len(out)):
            if out[row] in self._seen or weak[row]:
                continue
            box, cid = np.asarray(xyxy[row], np.float64), int(class_id[row])
            best, best_iou = None, _LEFT
            for other_cid, boxes in last:
                overlap = box_iou(box, boxes[-1][1]) if other_cid == cid else 0.0
                if overlap >= best_iou:
                    best, best_iou = boxes, overlap
            if best is not None:
                led[row] = best[-_HISTORY:]
            if out[row] < 0:
                self._unconfirmed.append((cid, [*led.get(row, []), (ts, box)][-_HISTORY:]))
        return led

    def _turned_back(self, xyxy: np.ndarray, tracker_id: np.ndarray, out: np.ndarray,
                     ts: int, frame: tuple[int, int]) -> None:
        """Gives a new id to a track whose box, cut by the frame's edge, shrank into it and
        now grows out of it again: a vehicle left the frame there and another came in.

        A truck driving out at the right edge and one of the other lane driving in there a
        few frames later overlap so much, both cut by the edge, that the tracker's IoU
        association carries the first one's id on to the second, and on across the frame
        (testsrc:// seed 47: four times in 15 s, IDF1 0.80; 0.87 with this). The box shrinks
        steadily (two frames in a row) to its least, then grows on every frame since, each
        way by a share of its width there (_GONE, _BACK). The track must have travelled
        toward that edge, by half that width, since it was first seen: a parked car at the
        edge that a vehicle driving out covers from its far side shrinks and grows back the
        same way, and keeps its id. The old id left the frame: no later track takes it over.
        """
        for row in range(len(out)):
            sid = int(out[row])
            seen = self._seen.get(sid)
            sides = _cut_sides(xyxy[row], frame)
            if not sides or seen is None or seen.stands(ts, self.within_ns):
                continue
            boxes = np.array([*(b for _, b in seen.boxes), np.asarray(xyxy[row], np.float64)])
            for side in sides:
                start = len(boxes) - 1  # the run of boxes that edge cuts, up to now
                while start and side in _cut_sides(boxes[start - 1], frame):
                    start -= 1
                extent = _extent(boxes[start:], side, frame)
                least = int(np.argmin(extent))
                if least < 3 or least > len(extent) - 3:
                    continue  # a shrink of three boxes and a growth of two, at least
                widest = float(extent[:least + 1].max())
                axis = side % 2
                moved = ((boxes[start + least, axis] + boxes[start + least, axis + 2])
                         - (seen.first[axis] + seen.first[axis + 2])) / 2
                if (widest - extent[least] >= max(_TURN_PX, _GONE * widest)
                        and extent[-1] - extent[least] >= max(_TURN_PX, _BACK * widest)
                        and (np.diff(extent[least - 2:least + 1]) < 0).all()
                        and (np.diff(extent[least:]) > 0).all()
                        and (moved if side >= 2 else -moved) >= 0.5 * widest):
                    del self._seen[sid]
                    out[row] = self._alias[int(tracker_id[row])] = self._new_id(0)
                    break

    def _reclaim(self, xyxy: np.ndarray, class_id: np.ndarray, out: np.ndarray,
                 ts: int) -> None:
        """Gives a box no track holds (id -1) the id of a still object, lost now, whose
        place it stands at (IoU >= ``AT_PLACE``, same class).

        A parked car that passing traffic hid comes back partly hidden still, scored low: the
        tracker brings a lost track back only on a box scored ``high_conf_det_threshold`` or
        more, and a new track has no id for its first ``minimum_consecutive_frames``. For
        those frames the car was reported with no id, or not at all (testsrc:// seed 109, reference
        detector: a parked truck scored 0.21-0.32 for the three frames after each bus that
        passed it). The rejoin gives the track its id once the tracker confirms it, as before.
        """
        taken = {int(t) for t in out if t >= 0}
        for row in np.flatnonzero(out < 0):
            best = _closest(xyxy[row], (
                (sid, seen.anchor) for sid, seen in self._seen.items()
                if sid not in taken and seen.class_id == int(class_id[row])
                and seen.stands(ts, self.within_ns)), AT_PLACE)
            if best >= 0:
                out[row] = best
                taken.add(best)

    def _swap_back(self, xyxy: np.ndarray, class_id: np.ndarray, tracker_id: np.ndarray,
                   out: np.ndarray, ts: int) -> None:
        """Gives a still object's id back to it, where a passing vehicle carried it off.

        A parked car and a car passing it, of one class, with boxes overlapping by IoU 0.5
        and more, become one box (class-wise NMS): the parked car's track goes on with the
        passing one, and the parked car, seen again, is another track (testsrc:// seed 34:
        five times in 15 s). When an id that stood still has left its place (IoU < 0.3)
        within ``within_s`` while a box of its class that is not still somewhere of its own
        stands there (IoU >= 0.5), the two rows trade ids, from now on.
        """
        for row in range(len(out)):
            sid = int(out[row])  # as traded so far
            seen = self._seen.get(sid)
            if (seen is None or not seen.stands(ts, self.within_ns)
                    or box_iou(xyxy[row], seen.anchor) >= _LEFT):
                continue
            best, best_iou = -1, 0.5
            for other, oid in enumerate(out.tolist()):
                if other == row or oid < 0 or int(class_id[other]) != seen.class_id:
                    continue
                mine = self._seen.get(oid)
                if mine is not None and mine.stands(ts, self.within_ns):
                    continue  # a still object of its own: not the one that stood here
                overlap = box_iou(xyxy[other], seen.anchor)
                if overlap >= best_iou:
                    best, best_iou = other, overlap
            if best < 0:
                continue
            a, b = int(tracker_id[row]), int(tracker_id[best])
            self._alias[a], self._alias[b] = int(out[best]), sid
            out[row], out[best] = out[best], sid

    @staticmethod
    def _stand(seen: _Seen, ts: int) -> None:
        """Keeps where ``seen`` stands, once it has stood still there for ``_STAND_NS``:
        over the whole stay its centre stays within ``_STILL`` of its size of where the stay
        began. A big, slow truck looks still over the history (its box is most of the
        frame) but drifts off over a second.

        The place is the median of the stay's boxes: a vehicle passing it, of its class,
        makes one box of the two for a few frames (class-wise NMS), larger than either, and
        the largest box would make that its place (testsrc:// seed 27); one covering it makes
        its box smaller for a few frames. Neither moves the median."""
        box = seen.still()
        if box is None:
            seen.still_since = None
            return
        centre, size = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
        if seen.still_since is None or (np.abs(centre - seen.still_since[1])
                                        >= _STILL * size).any():
            seen.still_since = (ts, centre)
            seen.stay.clear()
            seen.stay.extend(b for _, b in seen.boxes)
        else:
            seen.stay.append(seen.boxes[-1][1])
        if ts - seen.still_since[0] >= _STAND_NS:
            seen.anchor, seen.anchor_ns = np.median(np.array(seen.stay), axis=0), ts

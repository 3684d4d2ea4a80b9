"""Tracking, line crossings per class and direction, zone dwell times.

The tracker and the zone geometry come from maintained libraries: the tracker the config names
from Roboflow's ``trackers`` (edgekit.analytics.tracking; supervision 0.31 removed its own
``sv.ByteTrack`` and points there) and
supervision's ``PolygonZone``. This module keeps the per-class, per-direction books, the
hysteresis that turns a jittery box into one count (``min_frames``, ``enter_frames``,
``exit_frames``), and turns changes into events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import require
from ..types import Detections, Frame
from .config import AnalyticsConfig, LineConfig, ZoneConfig
from .rejoin import Rejoin, box_iou
from .standing import Standing


def _scaled(points: tuple[tuple[float, float], ...], relative: bool, size: tuple[int, int]
            ) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    if relative:
        pts = pts * np.asarray(size, np.float64)
    return pts


@dataclass(slots=True)
class _Side:
    """Where a track is relative to a counting line."""

    side: bool  # the side it was last counted on (or first seen on)
    streak: int  # consecutive observations on the other side
    last_ns: int  # when it was last seen near the line
    counted: bool = False  # crossed (and was counted) once already


class _Line:
    """A counting line: a track is counted when its box centre has moved to the other side and
    stayed there for ``min_frames`` observations.

    Not supervision's ``LineZone``: that forgets a track absent for ``min_frames + 1`` frames,
    so a vehicle that crosses while hidden (behind a parked truck on testsrc://) came back
    as a stranger on the far side and was never counted. Here a track's side is kept as long
    as the tracker keeps the track itself (``keep_ns``).
    """

    def __init__(self, config: LineConfig, pts: np.ndarray, keep_ns: int) -> None:
        self.config, self.keep_ns = config, keep_ns
        self.points = pts.round().astype(int)
        self.start, self.vector = pts[0], pts[1] - pts[0]
        self.counts: dict[str, dict[str, int]] = {d: {} for d in config.directions}
        self.tracks: dict[int, _Side] = {}

    def _right(self, points: np.ndarray) -> np.ndarray:
        """Whether each point is right of start -> end in image coordinates (y down):
        supervision's "in" side."""
        rel = points - self.start
        return self.vector[0] * rel[..., 1] - self.vector[1] * rel[..., 0] < 0

    def _sides(self, xyxy: np.ndarray, centres: np.ndarray) -> list[bool | None]:
        """Each box's side (True: the "in" side), or None for a box astride the line when
        the line's anchor is "box"."""
        if self.config.anchor == "center":
            return self._right(centres).tolist()
        corners = np.stack([xyxy[:, [0, 1]], xyxy[:, [2, 1]], xyxy[:, [0, 3]],
                            xyxy[:, [2, 3]]], axis=1)
        right = self._right(corners)
        return [True if every else None if some else False
                for every, some in zip(right.all(axis=1), right.any(axis=1), strict=True)]

    def crossings(self, xyxy: np.ndarray, ids: np.ndarray, ts: int) -> list[tuple[int, int]]:
        """(row, direction index) for each track that has just crossed; direction 0 is
        supervision's "in" (to the right of start -> end, as the image shows it)."""
        centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2
        along = (centres - self.start) @ self.vector / float(self.vector @ self.vector)
        sides = self._sides(xyxy, centres)
        out = []
        for row, (tid, t, side) in enumerate(zip(ids.tolist(), along, sides, strict=True)):
            # Unconfirmed, beside the line's ends, or astride it (anchor "box"): no evidence.
            if tid < 0 or not 0.0 <= t <= 1.0 or side is None:
                continue
            state = self.tracks.get(tid)
            if state is None:
                self.tracks[tid] = _Side(bool(side), 0, ts)
                continue
            state.last_ns = ts
            state.streak = state.streak + 1 if side != state.side else 0
            if state.streak >= self.config.min_frames:
                state.side, state.streak = bool(side), 0
                if not (self.config.once and state.counted):
                    out.append((row, 0 if side else 1))
                state.counted = True
        for tid in [t for t, st in self.tracks.items() if ts - st.last_ns > self.keep_ns]:
            del self.tracks[tid]  # the tracker has dropped it too: memory stays bounded
        return out


@dataclass(slots=True)
class _Visit:
    """A track's stay in a zone: counted once it has been seen inside ``enter_frames`` times;
    it ends when the track is seen outside ``exit_frames`` times in a row, over at least
    ``exit_s``."""

    since_ns: int  # first seen inside
    label: str
    inside: int = 0  # observations inside during this stay
    outside: int = 0  # consecutive observations outside
    last_ns: int = 0  # last seen inside
    left_ns: int = 0  # first seen outside, in the current run outside
    counted: bool = False
    box: np.ndarray | None = None  # where it was last seen inside


def _rejoined(zone: _Zone, label: str, box: np.ndarray, seen: set[int]) -> _Visit | None:
    """The counted stay a new track continues, if any: one of the same class, not seen now,
    whose last box this one overlaps (IoU >= 0.5). ByteTrack gives a parked car a new id
    after a passing vehicle hid it (its Kalman prediction drifted while the box shrank), and
    each new id was counted as an entry: 7 entries for one parked car on testsrc:// seed 5."""
    for tid, visit in list(zone.visits.items()):
        if tid in seen or not visit.counted or visit.label != label or visit.box is None:
            continue
        if box_iou(box, visit.box) >= 0.5:
            del zone.visits[tid]
            return visit
    return None


class _Zone:
    def __init__(self, sv: Any, config: ZoneConfig, pts: np.ndarray) -> None:
        self.config = config
        self.points = pts.round().astype(np.int64)
        self.zone = sv.PolygonZone(polygon=self.points, triggering_anchors=[sv.Position.CENTER])
        self.visits: dict[int, _Visit] = {}  # tracker id -> its visit (counted or not yet)
        self.hold_ns = int(config.hold_s * 1e9)
        self.exit_ns = int(config.exit_s * 1e9)
        self.entered = 0
        self.dwell_total_s = 0.0
        self.exits = 0

    @property
    def occupancy(self) -> int:
        return sum(v.counted for v in self.visits.values())


class Analytics:
    """Per-camera tracking and counting.

    Args:
        config: Lines, zones and tracker settings.
        labels: The model's class names (line/zone ``classes`` refer to them).
    """

    def __init__(self, config: AnalyticsConfig, labels: list[str]) -> None:
        self.sv = require("supervision", extra="pipeline", purpose="line and zone analytics")
        from .tracking import build_tracker

        self.config, self.labels = config, labels
        t = config.tracker
        self.tracker, self._tracker_uses_frame = build_tracker(t)
        self._rejoin = (Rejoin(within_s=t.rejoin_s, min_iou=t.rejoin_iou,
                               still=t.rejoin_still)
                        if t.rejoin_s > 0 else None)
        unknown = {c for x in (*config.lines, *config.zones) for c in x.classes} - set(labels)
        if unknown:
            from .config import ConfigError

            raise ConfigError(f"Analytics classes {sorted(unknown)} are not model labels.",
                              hint=f"The model's labels: {', '.join(labels)}.")
        # How long the tracker keeps a lost track (its buffer is in 30 fps frames, and with
        # timestamps it counts time): a line or zone keeps a track's state as long.
        # A stitched track (rejoin_s) comes back under its old id later than that: its line
        # side and zone stay must still be there.
        self._keep_ns = int(max(t.lost_track_buffer / 30.0, t.rejoin_s) * 1e9)
        self._standing = (Standing(frames=t.persist_frames, keep_s=self._keep_ns / 1e9)
                          if t.persist_frames else None)
        self._size: tuple[int, int] | None = None
        self.lines: list[_Line] = []
        self.zones: list[_Zone] = []

    def _geometry(self, size: tuple[int, int]) -> None:
        """(Re)builds lines and zones for a frame size, keeping the counts across a resize."""
        rel = self.config.relative
        old_lines = {x.config.name: x for x in self.lines}
        old_zones = {x.config.name: x for x in self.zones}
        self.lines = [_Line(c, _scaled((c.start, c.end), rel, size), self._keep_ns)
                      for c in self.config.lines]
        self.zones = [_Zone(self.sv, c, _scaled(c.polygon, rel, size)) for c in self.config.zones]
        for line in self.lines:
            old = old_lines.get(line.config.name)
            if old is not None:
                line.counts, line.tracks = old.counts, old.tracks
        for zone in self.zones:
            old = old_zones.get(zone.config.name)
            if old is not None:
                zone.visits, zone.entered = old.visits, old.entered
                zone.dwell_total_s, zone.exits = old.dwell_total_s, old.exits
        self._size = size

    def _label(self, class_id: int) -> str:
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)

    def update(self, frame: Frame, detections: Detections, *,
               conf: float | None = None) -> tuple[Detections, list[dict]]:
        """Tracks the frame's detections; returns them with tracker ids, and the new events.

        ``conf``: the model's own score threshold, where the detections were decoded lower for
        the tracker (``tracking_thresholds``): a box under it that no track took is dropped,
        unless it stands where a lost still object stood (``Rejoin._reclaim``).
        """
        image = {"frame": frame.image} if self._tracker_uses_frame else {}
        tracked = self.tracker.update(detections.to_supervision(), **image,
                                      timestamp=frame.timestamp_ns / 1e9)
        weak = tracked[:0]
        if conf is not None and len(tracked) and tracked.confidence is not None:
            ids = (tracked.tracker_id if tracked.tracker_id is not None
                   else np.full(len(tracked), -1))
            strong = (ids >= 0) | (tracked.confidence >= conf)
            tracked, weak = tracked[strong], tracked[~strong]
        h, w = frame.image.shape[:2]
        if self._standing is not None and tracked.tracker_id is not None:
            # Every frame, an empty one too: a run of standing boxes must not span a gap.
            tracked.tracker_id = self._standing(tracked.xyxy, tracked.class_id,
                                                tracked.tracker_id, frame.timestamp_ns)
        if self._rejoin is not None and tracked.tracker_id is not None and len(tracked) + len(weak):
            tracked = self._rejoined(tracked, weak, frame.timestamp_ns, (w, h))
        return Detections.from_supervision(tracked), self.count((w, h), tracked,
                                                                frame.timestamp_ns)

    def _rejoined(self, tracked: Any, weak: Any, ts: int, size: tuple[int, int]) -> Any:
        """The tracked boxes with the rejoin's ids, and those of the weak ones (under the
        model's threshold, no track) that it gave an id."""
        strong = len(tracked)
        if len(weak):
            tracked = self.sv.Detections.merge([tracked, weak])
        is_weak = np.arange(len(tracked)) >= strong
        tracked.tracker_id = self._rejoin(tracked.xyxy, tracked.class_id, tracked.tracker_id,
                                          ts, size, weak=is_weak)
        return tracked[~is_weak | (tracked.tracker_id >= 0)]

    def count(self, size: tuple[int, int], tracked: Any, timestamp_ns: int) -> list[dict]:
        """Counts already-tracked detections (supervision's, with tracker ids) of one frame.

        ``update`` calls it after tracking; scoring calls it on ground-truth tracks to get the
        counts a perfect tracker would give.
        """
        if self._size != size:
            self._geometry(size)
        return [*self._lines(tracked, timestamp_ns), *self._zones(tracked, timestamp_ns)]

    def _selected(self, tracked: Any, classes: tuple[str, ...]) -> Any:
        if not classes:
            return tracked
        wanted = [i for i, name in enumerate(self.labels) if name in classes]
        return tracked[np.isin(tracked.class_id, wanted)]

    def _lines(self, tracked: Any, ts: int) -> list[dict]:
        events = []
        for line in self.lines:
            subset = self._selected(tracked, line.config.classes)
            if not len(subset) and not line.tracks:
                continue
            ids = subset.tracker_id if subset.tracker_id is not None else np.full(len(subset), -1)
            for row, way in line.crossings(np.asarray(subset.xyxy, np.float64).reshape(-1, 4),
                                           np.asarray(ids), ts):
                label = self._label(int(subset.class_id[row]))
                direction = line.config.directions[way]
                book = line.counts[direction]
                book[label] = book.get(label, 0) + 1
                events.append({"type": "line_crossing", "line": line.config.name,
                               "direction": direction, "class": label,
                               "tracker_id": int(ids[row]), "timestamp_ns": ts})
        return events

    def _zones(self, tracked: Any, ts: int) -> list[dict]:
        events = []
        seen = ({int(t) for t in tracked.tracker_id if t >= 0}
                if tracked.tracker_id is not None else set())
        for zone in self.zones:
            subset = self._selected(tracked, zone.config.classes)
            mask = zone.zone.trigger(subset) if len(subset) else np.zeros(0, bool)
            now_inside = {int(t): (self._label(int(c)), box) for t, c, box, m in
                          zip(subset.tracker_id, subset.class_id, subset.xyxy, mask,
                              strict=True) if m and t >= 0} if len(subset) else {}
            for tid, (label, box) in now_inside.items():
                if tid not in zone.visits:
                    zone.visits[tid] = _rejoined(zone, label, box, seen) or _Visit(ts, label)
                visit = zone.visits[tid]
                visit.inside, visit.outside, visit.last_ns = visit.inside + 1, 0, ts
                visit.box = box
                # Counted after enter_frames inside: a box whose centre grazes the edge for
                # a frame (a weak detection) is no entry, one that flickers across it (a
                # parked car on the border) is one.
                if not visit.counted and visit.inside >= zone.config.enter_frames:
                    visit.counted = True
                    zone.entered += 1
                    events.append({"type": "zone_enter", "zone": zone.config.name,
                                   "class": label, "tracker_id": tid, "timestamp_ns": ts})
            for tid in [t for t in zone.visits if t not in now_inside]:
                visit = zone.visits[tid]
                if tid in seen:  # seen outside: the stay ends after exit_frames in a row
                    if not visit.outside:
                        visit.left_ns = ts
                    visit.outside += 1
                    if (visit.outside < zone.config.exit_frames
                            or ts - visit.left_ns < zone.exit_ns):
                        continue
                elif ts - visit.last_ns <= max(self._keep_ns, zone.hold_ns * visit.counted):
                    continue  # not detected now: still inside (hidden), for a while
                del zone.visits[tid]
                if visit.counted:
                    # From the first frame inside to the first frame seen outside (or the
                    # last seen inside, for a track that vanished): the hysteresis delays the
                    # events, not the dwell.
                    end_ns = visit.left_ns if visit.outside else visit.last_ns
                    dwell = (end_ns - visit.since_ns) / 1e9
                    zone.dwell_total_s += dwell
                    zone.exits += 1
                    events.append({"type": "zone_exit", "zone": zone.config.name,
                                   "class": visit.label, "tracker_id": tid,
                                   "dwell_s": round(dwell, 3), "timestamp_ns": ts})
        return events

    def counts(self) -> dict[str, Any]:
        """Running totals: crossings per line/direction/class, zone occupancy and dwell."""
        return {
            "lines": {x.config.name: {d: dict(c) for d, c in x.counts.items()}
                      for x in self.lines},
            "zones": {z.config.name: {
                "occupancy": z.occupancy, "entered": z.entered,
                "mean_dwell_s": round(z.dwell_total_s / z.exits, 3) if z.exits else None}
                for z in self.zones},
        }

    def draw(self, image: np.ndarray) -> None:
        """Draws the lines (with their counts) and the zones on an annotated frame."""
        import cv2

        for line in self.lines:
            p, q = (tuple(int(v) for v in pt) for pt in line.points)
            cv2.line(image, p, q, (0, 255, 255), 2)
            text = " ".join(f"{d}:{sum(c.values())}" for d, c in line.counts.items())
            cv2.putText(image, f"{line.config.name} {text}", (p[0] + 4, max(p[1] - 6, 12)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1, cv2.LINE_AA)
        for zone in self.zones:
            cv2.polylines(image, [zone.points.reshape(-1, 1, 2).astype(np.int32)], True,
                          (255, 0, 255), 2)
            x, y = (int(v) for v in zone.points[0])
            cv2.putText(image, f"{zone.config.name} {zone.occupancy}", (x + 4, y + 16),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 0, 255), 1, cv2.LINE_AA)

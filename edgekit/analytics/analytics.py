"""Tracking (ByteTrack), line crossings per class and direction, zone dwell times.

The tracker and the geometry come from maintained libraries: ``trackers.ByteTrackTracker``
(Roboflow's trackers; supervision 0.31 removed its own ``sv.ByteTrack`` and points there) and
supervision's ``LineZone``/``PolygonZone``. This module only keeps the per-class, per-direction
books and turns changes into events.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import require
from ..types import Detections, Frame
from .config import AnalyticsConfig, LineConfig, ZoneConfig


def _scaled(points: tuple[tuple[float, float], ...], relative: bool, size: tuple[int, int]
            ) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    if relative:
        pts = pts * np.asarray(size, np.float64)
    return pts


class _Line:
    def __init__(self, sv: Any, config: LineConfig, pts: np.ndarray) -> None:
        self.config = config
        self.points = pts.round().astype(int)
        # One anchor (the box centre): a box counts once its centre crosses, however large.
        self.zone = sv.LineZone(start=sv.Point(*pts[0]), end=sv.Point(*pts[1]),
                                triggering_anchors=[sv.Position.CENTER])
        self.counts: dict[str, dict[str, int]] = {d: {} for d in config.directions}


class _Zone:
    def __init__(self, sv: Any, config: ZoneConfig, pts: np.ndarray) -> None:
        self.config = config
        self.points = pts.round().astype(np.int64)
        self.zone = sv.PolygonZone(polygon=self.points, triggering_anchors=[sv.Position.CENTER])
        self.inside: dict[int, tuple[int, str]] = {}  # tracker id -> (entered at ns, label)
        self.unseen: dict[int, tuple[int, int]] = {}  # inside but not detected: (frames, last ns)
        self.entered = 0
        self.dwell_total_s = 0.0
        self.exits = 0


class Analytics:
    """Per-camera tracking and counting.

    Args:
        config: Lines, zones and tracker settings.
        labels: The model's class names (line/zone ``classes`` refer to them).
    """

    def __init__(self, config: AnalyticsConfig, labels: list[str]) -> None:
        self.sv = require("supervision", extra="pipeline", purpose="line and zone analytics")
        trackers = require("trackers", extra="pipeline", purpose="ByteTrack tracking")
        self.config, self.labels = config, labels
        t = config.tracker
        self.tracker = trackers.ByteTrackTracker(
            lost_track_buffer=t.lost_track_buffer, frame_rate=t.frame_rate,
            track_activation_threshold=t.track_activation_threshold,
            high_conf_det_threshold=t.high_conf_det_threshold,
            minimum_consecutive_frames=t.minimum_consecutive_frames,
            minimum_iou_threshold=t.minimum_iou_threshold)
        unknown = {c for x in (*config.lines, *config.zones) for c in x.classes} - set(labels)
        if unknown:
            from .config import ConfigError

            raise ConfigError(f"Analytics classes {sorted(unknown)} are not model labels.",
                              hint=f"The model's labels: {', '.join(labels)}.")
        self._size: tuple[int, int] | None = None
        self.lines: list[_Line] = []
        self.zones: list[_Zone] = []

    def _geometry(self, size: tuple[int, int]) -> None:
        """(Re)builds lines and zones for a frame size, keeping the counts across a resize."""
        rel = self.config.relative
        old_lines = {x.config.name: x for x in self.lines}
        old_zones = {x.config.name: x for x in self.zones}
        self.lines = [_Line(self.sv, c, _scaled((c.start, c.end), rel, size))
                      for c in self.config.lines]
        self.zones = [_Zone(self.sv, c, _scaled(c.polygon, rel, size)) for c in self.config.zones]
        for line in self.lines:
            if line.config.name in old_lines:
                line.counts = old_lines[line.config.name].counts
        for zone in self.zones:
            old = old_zones.get(zone.config.name)
            if old is not None:
                zone.inside, zone.entered, zone.unseen = old.inside, old.entered, old.unseen
                zone.dwell_total_s, zone.exits = old.dwell_total_s, old.exits
        self._size = size

    def _label(self, class_id: int) -> str:
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)

    def update(self, frame: Frame, detections: Detections) -> tuple[Detections, list[dict]]:
        """Tracks the frame's detections; returns them with tracker ids, and the new events."""
        tracked = self.tracker.update(detections.to_supervision(),
                                      timestamp=frame.timestamp_ns / 1e9)
        h, w = frame.image.shape[:2]
        return Detections.from_supervision(tracked), self.count((w, h), tracked,
                                                                frame.timestamp_ns)

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
            crossed = line.zone.trigger(subset)
            for direction, mask in zip(line.config.directions, crossed, strict=True):
                for cid, tid in zip(subset.class_id[mask], subset.tracker_id[mask], strict=True):
                    label = self._label(int(cid))
                    book = line.counts[direction]
                    book[label] = book.get(label, 0) + 1
                    events.append({"type": "line_crossing", "line": line.config.name,
                                   "direction": direction, "class": label,
                                   "tracker_id": int(tid), "timestamp_ns": ts})
        return events

    def _zones(self, tracked: Any, ts: int) -> list[dict]:
        events = []
        for zone in self.zones:
            subset = self._selected(tracked, zone.config.classes)
            mask = zone.zone.trigger(subset) if len(subset) else np.zeros(0, bool)
            now_inside = {int(t): self._label(int(c)) for t, c, m in
                          zip(subset.tracker_id, subset.class_id, mask, strict=True)
                          if m and t >= 0}
            seen = {int(t) for t in tracked.tracker_id} if tracked.tracker_id is not None \
                else set()
            for tid, label in now_inside.items():
                zone.unseen.pop(tid, None)
                if tid not in zone.inside:
                    zone.inside[tid] = (ts, label)
                    zone.entered += 1
                    events.append({"type": "zone_enter", "zone": zone.config.name,
                                   "class": label, "tracker_id": tid, "timestamp_ns": ts})
            # Seen outside the zone, or missed for longer than the tracker keeps a lost track:
            # the dwell ends and the entry is freed (memory stays bounded). A track missed for
            # a frame or two (occlusion, a weak detection) is still inside: exiting it then
            # counted its return as a new entry (30 entries for 8 on testsrc://).
            for tid in [t for t in zone.inside if t not in now_inside]:
                if tid not in seen:
                    frames, last_ns = zone.unseen.get(tid, (0, ts))
                    if frames < self.config.tracker.lost_track_buffer:
                        zone.unseen[tid] = (frames + 1, last_ns)
                        continue
                    ts_end = last_ns
                else:
                    ts_end = ts
                zone.unseen.pop(tid, None)
                entered_ns, label = zone.inside.pop(tid)
                dwell = (ts_end - entered_ns) / 1e9
                zone.dwell_total_s += dwell
                zone.exits += 1
                events.append({"type": "zone_exit", "zone": zone.config.name, "class": label,
                               "tracker_id": tid, "dwell_s": round(dwell, 3),
                               "timestamp_ns": ts})
        return events

    def counts(self) -> dict[str, Any]:
        """Running totals: crossings per line/direction/class, zone occupancy and dwell."""
        return {
            "lines": {x.config.name: {d: dict(c) for d, c in x.counts.items()}
                      for x in self.lines},
            "zones": {z.config.name: {
                "occupancy": len(z.inside), "entered": z.entered,
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
            cv2.putText(image, f"{zone.config.name} {len(zone.inside)}", (x + 4, y + 16),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 0, 255), 1, cv2.LINE_AA)

"""Tracking (real ByteTrack), line counts per class and direction, zone dwell, config files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.analytics import Analytics, ConfigError, load_config, parse_config
from edgekit.analytics.tracking import TRACKERS
from edgekit.types import Detections, Frame

LABELS = ["car", "truck", "pedestrian"]
YAML = """
relative: false
tracker:
  lost_track_buffer: 10
lines:
  - name: gate
    start: [100, 0]
    end: [100, 200]
    classes: [car, truck]
    directions: [eastbound, westbound]
zones:
  - name: lot
    polygon: [[120, 0], [200, 0], [200, 200], [120, 200]]
"""
TOML = """
relative = false
[tracker]
lost_track_buffer = 10
[[lines]]
name = "gate"
start = [100, 0]
end = [100, 200]
classes = ["car", "truck"]
directions = ["eastbound", "westbound"]
[[zones]]
name = "lot"
polygon = [[120, 0], [200, 0], [200, 200], [120, 200]]
"""


def _frame(i: int) -> Frame:
    # 10 fps capture clock; the image only gives the size.
    return Frame(np.zeros((200, 240, 3), np.uint8), i * 100_000_000, i, "test")


def _run(analytics: Analytics, tracks: list[tuple[int, float, float]], frames: int
         ) -> list[dict]:
    """tracks: (class_id, x at frame 0, dx per frame), boxes 20x20 at y=50+40*k."""
    events = []
    for i in range(frames):
        boxes = [[x + dx * i, 50 + 40 * k, x + dx * i + 20, 70 + 40 * k]
                 for k, (_, x, dx) in enumerate(tracks)]
        dets = Detections(boxes, [0.9] * len(tracks), [c for c, _, _ in tracks])
        tracked, new = analytics.update(_frame(i), dets)
        assert len(tracked) == len(tracks)
        events += new
    return events


@pytest.fixture
def config(tmp_path: Path):
    path = tmp_path / "a.yaml"
    path.write_text(YAML)
    return load_config(path)


def test_yaml_and_toml_give_the_same_config(config, tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text(TOML)
    assert load_config(path) == config
    assert config.lines[0].directions == ("eastbound", "westbound")


@pytest.mark.parametrize(("data", "message"), [
    ({"lines": [{"name": "x", "start": [0, 0]}]}, "needs name, start and end"),
    ({"lines": [{"name": "x", "start": [0], "end": [1, 1]}]}, "expected a point"),
    ({"zones": [{"name": "z", "polygon": [[0, 0], [1, 1]]}]}, "at least 3 points"),
    ({"tracker": {"speed": 3}}, "unknown key"),
    ({"tracker": {"type": "deepsort"}}, "unknown tracker type"),
    # A setting of another type is refused, naming the type it was checked against.
    ({"tracker": {"type": "ocsort", "track_activation_threshold": 0.3}}, r"\(ocsort\)"),
    ({"zone": []}, "unknown key"),
])
def test_bad_config_names_the_entry(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


@pytest.mark.parametrize("kind", sorted(TRACKERS))
def test_every_registered_tracker_tracks_and_counts(kind: str) -> None:
    pytest.importorskip("trackers")
    data = {"tracker": {"type": kind, "lost_track_buffer": 10, "frame_rate": 10},
            "lines": [{"name": "gate", "start": [100, 0], "end": [100, 200],
                       "directions": ["eastbound", "westbound"]}]}
    config = parse_config(data)
    assert config.tracker.type == kind
    analytics = Analytics(config, LABELS)
    events = _run(analytics, [(0, 40, 8), (1, 160, -8)], 16)
    assert sorted((e["class"], e["direction"]) for e in events
                  if e["type"] == "line_crossing") == [("car", "eastbound"),
                                                       ("truck", "westbound")]


def test_tracker_settings_reach_the_tracker() -> None:
    pytest.importorskip("trackers")
    config = parse_config({"tracker": {"type": "ocsort", "delta_t": 5,
                                       "minimum_consecutive_frames": 2}})
    tracker = Analytics(config, LABELS).tracker
    assert type(tracker).__name__ == "OCSORTTracker"
    assert tracker.delta_t == 5 and tracker.minimum_consecutive_frames == 2


def test_unknown_class_in_config_is_refused(config) -> None:
    with pytest.raises(ConfigError, match="not model labels"):
        Analytics(config, ["person", "dog"])


def test_line_counts_per_class_and_direction(config) -> None:
    analytics = Analytics(config, LABELS)
    # a car eastbound, a truck westbound, a pedestrian eastbound (not counted: classes filter)
    events = _run(analytics, [(0, 40, 8), (1, 160, -8), (2, 40, 8)], 16)
    crossings = [e for e in events if e["type"] == "line_crossing"]
    # supervision's "in" for a line drawn top to bottom is left to right: eastbound here
    assert sorted((e["class"], e["direction"]) for e in crossings) == [
        ("car", "eastbound"), ("truck", "westbound")]
    counts = analytics.counts()["lines"]["gate"]
    assert sum(sum(d.values()) for d in counts.values()) == 2
    assert all(e["tracker_id"] >= 0 for e in crossings)
    assert counts == {"eastbound": {"car": 1}, "westbound": {"truck": 1}}


def test_zone_dwell_time_from_capture_timestamps(config) -> None:
    analytics = Analytics(config, LABELS)
    # one car moving east at 10 px/frame: its centre is in the zone (x 120..200) from
    # x0 + 10 = 120 to x0 + 10 < 200, i.e. frames 8..15 when x0 starts at 30
    events = _run(analytics, [(0, 30, 10)], 22)
    enter = [e for e in events if e["type"] == "zone_enter"]
    leave = [e for e in events if e["type"] == "zone_exit"]
    assert len(enter) == 1 and len(leave) == 1
    assert 0.6 <= leave[0]["dwell_s"] <= 0.9
    zone = analytics.counts()["zones"]["lot"]
    assert zone["entered"] == 1 and zone["occupancy"] == 0
    assert zone["mean_dwell_s"] == leave[0]["dwell_s"]
    # The entry and exit hysteresis delay the events, not the dwell: without it, the same.
    data = {"tracker": {"lost_track_buffer": 10}, "zones": [
        {"name": "lot", "polygon": [[120, 0], [200, 0], [200, 200], [120, 200]],
         "enter_frames": 1, "exit_frames": 1}]}
    plain = [e for e in _run(Analytics(parse_config(data), LABELS), [(0, 30, 10)], 22)
             if e["type"] == "zone_exit"]
    assert plain[0]["dwell_s"] == leave[0]["dwell_s"]
    assert plain[0]["timestamp_ns"] < leave[0]["timestamp_ns"]


def test_relative_coordinates_follow_a_resolution_change() -> None:
    cfg = parse_config({"relative": True, "lines": [
        {"name": "mid", "start": [0.5, 0.0], "end": [0.5, 1.0]}]})
    analytics = Analytics(cfg, LABELS)
    analytics.update(Frame(np.zeros((100, 100, 3), np.uint8), 0), Detections.empty())
    assert analytics.lines[0].points.tolist() == [[50, 0], [50, 100]]
    analytics.update(Frame(np.zeros((200, 300, 3), np.uint8), 1), Detections.empty())
    assert analytics.lines[0].points.tolist() == [[150, 0], [150, 200]]


@pytest.mark.parametrize(("once", "expected"), [
    (False, [("car", "eastbound"), ("car", "westbound")]),
    (True, [("car", "eastbound")]),
])
def test_line_once_counts_a_track_at_most_once(once: bool, expected: list) -> None:
    """A car crosses east, then comes back west under the same track id: two crossings by
    default (a U-turn counts both ways), one with ``once: true`` (a parked or covered vehicle
    whose box centre wanders across the line is not counted again)."""
    data = {"relative": False, "tracker": {"lost_track_buffer": 10},
            "lines": [{"name": "gate", "start": [100, 0], "end": [100, 200],
                       "directions": ["eastbound", "westbound"], "once": once}]}
    analytics = Analytics(parse_config(data, where="test"), LABELS)
    xs = [40 + 8 * i for i in range(11)] + [120 - 8 * i for i in range(1, 11)]
    events = []
    for i, x in enumerate(xs):
        dets = Detections([[x, 50, x + 20, 70]], [0.9], [0])
        events += analytics.update(_frame(i), dets)[1]
    crossings = [e for e in events if e["type"] == "line_crossing"]
    assert [(e["class"], e["direction"]) for e in crossings] == expected
    assert len({e["tracker_id"] for e in crossings}) == 1


def test_line_once_must_be_true_or_false() -> None:
    with pytest.raises(ConfigError, match="once is true or false"):
        parse_config({"lines": [{"name": "l", "start": [0, 0], "end": [1, 1], "once": "yes"}]},
                     where="test")


@pytest.mark.parametrize(("anchor", "crossings"), [("box", 0), ("center", 4)])
def test_a_parked_vehicle_astride_the_line_is_not_a_crossing(anchor: str, crossings: int
                                                             ) -> None:
    """A parked bus astride the line, its box shifting from its left part to its right part
    and back as passing traffic hides one end (testsrc:// seed 3, reference detector: counted
    twice each way by its centre). By default ("box") a side needs all four corners on it, as
    supervision's LineZone has it; "center" counts the wandering centre."""
    data = {"relative": False, "tracker": {"lost_track_buffer": 10},
            "lines": [{"name": "gate", "start": [100, 0], "end": [100, 200],
                       "directions": ["eastbound", "westbound"], "anchor": anchor}]}
    analytics = Analytics(parse_config(data, where="test"), LABELS)
    whole, left, right = [50, 50, 170, 90], [50, 50, 120, 90], [90, 50, 170, 90]
    boxes = [whole] * 3 + ([left] * 4 + [whole] * 2 + [right] * 4 + [whole] * 2) * 2
    events = []
    for i, box in enumerate(boxes):
        events += analytics.update(_frame(i), Detections([box], [0.9], [1]))[1]
    assert len([e for e in events if e["type"] == "line_crossing"]) == crossings
    # A vehicle that drives across is counted either way.
    drive = Analytics(parse_config(data, where="test"), LABELS)
    events = []
    for i in range(25):
        events += drive.update(_frame(i), Detections([[10 * i, 50, 30 + 10 * i, 90]],
                                                     [0.9], [0]))[1]
    assert [e["direction"] for e in events if e["type"] == "line_crossing"] == ["eastbound"]


def test_line_anchor_must_be_box_or_center() -> None:
    with pytest.raises(ConfigError, match="anchor is one of box, center"):
        parse_config({"lines": [{"name": "l", "start": [0, 0], "end": [1, 1],
                                 "anchor": "bottom"}]}, where="test")


@pytest.mark.parametrize(("exit_s", "entries"), [(0.0, 4), (1.0, 1)])
def test_a_box_flickering_across_a_zone_edge_is_one_stay_with_exit_s(exit_s: float,
                                                                    entries: int) -> None:
    """A parked truck on the zone's edge: its box centre is inside for 3 frames, outside for
    5 (0.5 s at 10 fps), four times over (testsrc:// seed 16, reference detector: 10 entries
    for a truck the truth never has inside). With exit_s 1.0 it never leaves for long enough
    to end its stay."""
    data = {"relative": False, "tracker": {"lost_track_buffer": 10,
                                           "minimum_consecutive_frames": 1},
            "zones": [{"name": "lot", "polygon": [[120, 0], [200, 0], [200, 200], [120, 200]],
                       "exit_s": exit_s}]}
    analytics = Analytics(parse_config(data, where="test"), LABELS)
    inside, outside = [95, 50, 155, 90], [85, 50, 145, 90]  # centres x 125 and 115
    boxes = ([inside] * 3 + [outside] * 5) * 4
    events = []
    for i, box in enumerate(boxes):
        events += analytics.update(_frame(i), Detections([box], [0.9], [1]))[1]
    assert len([e for e in events if e["type"] == "zone_enter"]) == entries
    if not exit_s:
        return
    # Then it drives off east (10 px a frame): it leaves the zone at frame 9 of that, and
    # its stay ends exit_s later; the dwell runs to where it left, as without exit_s.
    start = len(boxes)
    for k in range(30):
        x = 85 + 10 * k
        events += analytics.update(_frame(start + k), Detections([[x, 50, x + 60, 90]],
                                                                 [0.9], [1]))[1]
    (enter,) = [e for e in events if e["type"] == "zone_enter"]
    (exit,) = [e for e in events if e["type"] == "zone_exit"]
    left = _frame(start + 9).timestamp_ns  # centre x 205: outside
    assert exit["timestamp_ns"] - left >= exit_s * 1e9
    since = enter["timestamp_ns"] - 100_000_000  # counted on its 2nd frame inside
    assert exit["dwell_s"] == pytest.approx((left - since) / 1e9)


@pytest.mark.parametrize("value", [0, 1.5, "low", True])
def test_detection_conf_must_be_a_score(value) -> None:
    with pytest.raises(ConfigError, match="detection_conf is a score above 0 and at most 1"):
        parse_config({"tracker": {"detection_conf": value}})


def test_low_score_boxes_extend_tracks_and_are_dropped_otherwise() -> None:
    """A car whose score dips under the model's threshold (half hidden) keeps its track and
    is still counted where it crosses the line; a low-score box no track takes is dropped."""
    pytest.importorskip("trackers")
    config = parse_config({"tracker": {"type": "botsort", "detection_conf": 0.1,
                                       "frame_rate": 10, "minimum_consecutive_frames": 2},
                           "lines": [{"name": "gate", "start": [100, 0], "end": [100, 200]}]})
    assert config.tracker.decode_conf(0.25) == 0.1 and config.tracker.decode_conf(0.05) == 0.05
    analytics = Analytics(config, LABELS)
    events, ids = [], set()
    for i in range(16):
        x = 40 + 8 * i
        # From frame 5 on the car scores 0.15 (under the model's 0.25) while it crosses at
        # x=100; a 0.15 box that never scored higher sits at the bottom.
        score = 0.9 if i < 5 else 0.15
        dets = Detections([[x, 50, x + 20, 70], [10, 150, 30, 170]], [score, 0.15], [0, 0])
        tracked, new = analytics.update(_frame(i), dets, conf=0.25)
        events += new
        assert all(box[1] < 100 for box in tracked.xyxy)  # the stray low box never shows
        if i >= 2:
            assert len(tracked) == 1 and tracked.tracker_id[0] >= 0
            ids.add(int(tracked.tracker_id[0]))
    assert len(ids) == 1
    assert [(e["type"], e["direction"]) for e in events] == [("line_crossing", "in")]


def _parked_car(persist: int | None) -> tuple[set[int], list[dict], list[float]]:
    """A parked car the detector scores 0.35 in every frame (under BoT-SORT's 0.5 to start a
    track), inside a zone; a car driving past at 0.35; a 0.35 box that flickers on and off.
    Returns the ids the parked car got, the events, and the scores reported for it."""
    pytest.importorskip("trackers")
    tracker = {"type": "botsort", "frame_rate": 10, "minimum_consecutive_frames": 2,
               "track_activation_threshold": 0.25, "high_conf_det_threshold": 0.5}
    if persist:
        tracker["persist_frames"] = persist
    config = parse_config({"tracker": tracker, "zones": [
        {"name": "bay", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]], "enter_frames": 2}]})
    analytics = Analytics(config, LABELS)
    ids, events, scores = set(), [], []
    for i in range(20):
        x = 120 + 25 * i
        boxes = [[40, 40, 80, 70], [x, 150, x + 30, 170]] + ([[300, 20, 330, 40]] if i % 2 else [])
        dets = Detections(boxes, [0.35] * len(boxes), [0] * len(boxes))
        tracked, new = analytics.update(_frame(i), dets)
        events += new
        for box, tid, score in zip(tracked.xyxy, tracked.tracker_id, tracked.confidence,
                                   strict=True):
            if box[0] == 40:
                scores.append(float(score))
                if tid >= 0:
                    ids.add(int(tid))
            else:
                assert tid < 0  # the moving and the flickering box never start a track
    return ids, events, scores


def test_a_parked_car_scored_low_gets_an_id_with_persist_frames() -> None:
    ids, events, scores = _parked_car(None)
    assert not ids and not events  # BoT-SORT alone: reported in every frame, never tracked
    ids, events, scores = _parked_car(5)
    assert len(ids) == 1
    assert [(e["type"], e["zone"]) for e in events] == [("zone_enter", "bay")]
    assert scores == pytest.approx([0.35] * 20)  # its own score, not the one handed over


@pytest.mark.parametrize("kind", ["botsort", "bytetrack", "ocsort", "sort"])
def test_persist_frames_gives_a_parked_car_an_id_with_any_tracker(kind) -> None:
    """With each type's own thresholds (a track starts at 0.6 for BoT-SORT and OC-SORT by
    default, 0.5 for ByteTrack by edgekit's, 0.25 for SORT): a parked car scored 0.35 gets
    one id, and enters the zone once. edgekit's first way handed the box to the tracker
    between its two thresholds, so it took only the ByteTrack kin, and only a box scored
    over the lower one (BoT-SORT's default 0.7 is over the higher)."""
    pytest.importorskip("trackers")
    config = parse_config({"tracker": {"type": kind, "frame_rate": 10, "persist_frames": 5},
                           "zones": [{"name": "bay", "enter_frames": 2,
                                      "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]]}]})
    analytics = Analytics(config, LABELS)
    ids, events = set(), []
    for i in range(20):
        tracked, new = analytics.update(_frame(i), Detections([[40, 40, 80, 70]], [0.35], [0]))
        events += new
        ids |= {int(t) for t in tracked.tracker_id if t >= 0}
    assert len(ids) == 1
    assert [(e["type"], e["zone"]) for e in events] == [("zone_enter", "bay")]


def test_a_standing_id_stays_at_its_place_when_a_car_drives_through_it() -> None:
    """A parked car scored 0.35 earns an id of its own (persist_frames); then a car scored
    0.9 drives through its place, and for a few frames only its box is left (class-wise
    NMS). The parked car has one id, its own again once the passing car is gone, and the
    passing car never takes it: handed to the tracker as a track (edgekit's first way), the
    parked car's track went on with the passing car."""
    pytest.importorskip("trackers")
    config = parse_config({"tracker": {"type": "botsort", "frame_rate": 10,
                                       "minimum_consecutive_frames": 2,
                                       "track_activation_threshold": 0.25,
                                       "high_conf_det_threshold": 0.5,
                                       "lost_track_buffer": 30, "persist_frames": 5}})
    analytics = Analytics(config, LABELS)
    parked, passing = [], []
    for i in range(40):
        x = -60 + 8 * i
        passes = [[x, 98, x + 62, 142]] if i >= 10 else []
        # Where the two overlap most, the detector's class-wise NMS keeps the passing car's
        # box alone.
        boxes = ([] if passes and abs(x - 140) < 20 else [[140, 100, 200, 140]]) + passes
        dets = Detections(boxes, [0.35] * (len(boxes) - len(passes)) + [0.9] * len(passes),
                          [0] * len(boxes))
        tracked, _ = analytics.update(_frame(i), dets)
        for box, tid in zip(tracked.xyxy, tracked.tracker_id, strict=True):
            (parked if box[0] == 140 and box[2] == 200 else passing).append(int(tid))
    standing = {t for t in parked if t >= 0}
    assert len(standing) == 1 and parked[-1] in standing  # one id, still its own at the end
    assert not standing & set(passing)  # the passing car never went by it


@pytest.mark.parametrize("tracker, message", [
    ({"persist_frames": 0}, "persist_frames is a number of frames"),
    ({"iou": "jaccard"}, "iou is one of iou, biou, giou, diou, ciou"),
])
def test_persist_frames_and_iou_are_checked(tracker, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"tracker": tracker})


def test_iou_names_the_trackers_overlap_measure() -> None:
    trackers = pytest.importorskip("trackers")
    from edgekit.analytics.tracking import build_tracker

    built, _ = build_tracker(parse_config({"tracker": {"type": "botsort", "iou": "ciou"}}).tracker)
    assert isinstance(built.iou, trackers.CIoU)

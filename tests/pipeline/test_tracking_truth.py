"""Tracking a counter can trust: testsrc:// is a training scene set in motion and knows its
ground truth, the scoring uses it, and lines and zones count a jittery or briefly missed
track once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.analytics import parse_config
from edgekit.analytics.analytics import Analytics
from edgekit.data.synth import VEHICLES
from edgekit.sources.testsrc import STILL_IDS, SceneGenerator

# Real-world widths in metres (edgekit.data.synth's camera model), for the perspective check.
_WIDTH_M = {0: 4.2, 1: 7.5, 2: 11.0, 3: 2.0}


def test_truth_boxes_are_where_the_vehicles_are_drawn() -> None:
    scene = SceneGenerator(width=320, height=240, seed=3, objects=3)
    checked = 0
    for index in range(1, 200, 3):
        image, truth = scene._compose(index)  # before the camera's tone curve and noise
        for tid, box, seen in zip(truth.track_id, truth.xyxy, truth.visible, strict=True):
            if tid >= STILL_IDS or seen < 0.999:
                continue
            mover = scene.movers[tid // 100_000]
            h, w = mover.patch.shape[:2]
            x, _ = scene._x(mover, index)
            x0, x1 = max(x, 0), min(x + w, 320)
            assert box.tolist() == [x0, int(mover.base) - h, x1, int(mover.base)]
            local = mover.patch[:, x0 - x:x1 - x]
            drawn = local[..., 3] > 0  # an RGBA sprite: the background shows around it
            assert drawn.any() and not drawn.all()
            assert np.array_equal(image[int(box[1]):int(box[3]), x0:x1][drawn],
                                  local[..., :3][drawn])
            checked += 1
    assert checked >= 5


def test_vehicles_drive_in_lanes_sized_by_the_scenes_perspective() -> None:
    for seed in (3, 4, 5):
        scene = SceneGenerator(width=640, height=480, seed=seed, objects=5)
        road = scene.road
        assert len(scene.movers) == 5
        for m in scene.movers:
            assert m.class_id in VEHICLES and road.horizon < m.base <= road.height
            metres = m.patch.shape[1] / road.pixels_per_metre(m.base)
            assert 0.8 * _WIDTH_M[m.class_id] <= metres <= 1.2 * _WIDTH_M[m.class_id]
        lanes = {m.base for m in scene.movers}
        # Nothing stands still in the lanes: parked objects are on either side of them.
        assert all(not min(lanes) <= s.depth <= max(lanes) for s in scene.still)
        # One lane, one direction and speed; nearer lanes look faster (perspective).
        for base in lanes:
            assert len({m.speed for m in scene.movers if m.base == base}) == 1


def test_a_vehicle_that_comes_round_again_is_a_new_object() -> None:
    scene = SceneGenerator(width=320, height=240, seed=3, objects=1)
    ids = {int(t) for i in range(1, 400) for t in scene.truth(i).track_id if t < STILL_IDS}
    assert len(ids) >= 2  # wrapped round at least once: each pass has its own id


def test_hidden_objects_are_not_labelled() -> None:
    scene = SceneGenerator(width=640, height=480, seed=5, objects=5)
    truths = [scene.truth(i) for i in range(1, 200, 5)]
    visible = np.concatenate([t.visible for t in truths])
    labelled = np.concatenate([t.labelled for t in truths])
    assert ((visible >= 0.3) == labelled).all()
    assert labelled.any() and not labelled.all()  # vehicles do hide one another


def _tracked(sv, boxes: list[tuple[int, list[float]]]):
    return sv.Detections(xyxy=np.array([b for _, b in boxes], np.float32).reshape(-1, 4),
                         class_id=np.zeros(len(boxes), int),
                         confidence=np.ones(len(boxes), np.float32),
                         tracker_id=np.array([t for t, _ in boxes], int))


def _count(config: dict, frames: list[list], sv) -> dict:
    analytics = Analytics(parse_config(config), ["car"])
    for i, seen in enumerate(frames):  # 10 fps
        analytics.count((320, 240), _tracked(sv, seen), i * 10**8)
    return analytics.counts()


def test_zone_keeps_a_track_through_a_short_miss_and_ends_it_after_a_long_one() -> None:
    sv = pytest.importorskip("supervision")
    # The tracker keeps a lost track lost_track_buffer 30 fps frames: 9 -> 0.3 s.
    zone = {"name": "z", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]],
            "enter_frames": 1, "exit_frames": 1, "hold_s": 0}
    inside, outside = [7, [40, 40, 60, 60]], [7, [140, 40, 160, 60]]
    frames = [[inside], [], [], [inside],  # missed for 0.2 s: the same visit
              [], [], [], [], [inside],  # missed for 0.5 s, longer than the buffer: a new visit
              [outside]]  # seen outside: the visit ends at once (exit_frames 1)
    z = _count({"tracker": {"lost_track_buffer": 9}, "zones": [zone]}, frames, sv)["zones"]["z"]
    assert z["entered"] == 2 and z["occupancy"] == 0


def test_a_box_jittering_on_a_zone_edge_enters_once() -> None:
    sv = pytest.importorskip("supervision")
    # A parked car whose box centre is on the zone's edge: in, out, in, out...
    zone = {"name": "z", "polygon": [[0, 100], [320, 100], [320, 240], [0, 240]]}
    frames = [[[5, [100, 80 + 6 * (i % 2), 140, 118 + 6 * (i % 2)]]] for i in range(30)]
    z = _count({"zones": [zone]}, frames, sv)["zones"]["z"]
    assert z["entered"] == 1 and z["occupancy"] == 1
    plain = dict(zone, enter_frames=1, exit_frames=1)  # without the hysteresis: every flicker
    assert _count({"zones": [plain]}, frames, sv)["zones"]["z"]["entered"] == 15


def test_a_parked_car_that_comes_back_under_a_new_id_is_not_a_new_entry() -> None:
    sv = pytest.importorskip("supervision")
    zone = {"name": "z", "polygon": [[0, 0], [320, 0], [320, 240], [0, 240]]}
    parked, other = [50, 50, 110, 80], [200, 150, 260, 180]
    # Hidden by a passing bus for 1.5 s, the tracker then gives the parked car id 2.
    frames = [[[1, parked]]] * 5 + [[]] * 15 + [[[2, parked]]] * 5 + [[[3, other]]] * 3
    z = _count({"zones": [zone]}, frames, sv)["zones"]["z"]
    assert z["entered"] == 2 and z["occupancy"] == 2  # the parked car once, the other car
    z = _count({"zones": [dict(zone, hold_s=0)]}, frames, sv)["zones"]["z"]
    assert z["entered"] == 3  # without holding the hidden car: counted again


def test_a_line_counts_a_crossing_once_despite_jitter_and_a_hidden_crossing() -> None:
    sv = pytest.importorskip("supervision")
    line = {"name": "l", "start": [160, 0], "end": [160, 240], "directions": ["east", "west"]}
    jitter = [[[1, [150 + 8 * (i % 2), 100, 160 + 8 * (i % 2), 120]]] for i in range(20)]
    assert _count({"lines": [line]}, jitter, sv)["lines"]["l"] == {"east": {}, "west": {}}
    # Seen left of the line, hidden for 0.5 s while it crosses, then seen right of it.
    left, right = [2, [100, 100, 140, 120]], [2, [200, 100, 240, 120]]
    frames = [[left], [left], [], [], [], [], [], [right], [right], [right]]
    counts = _count({"tracker": {"lost_track_buffer": 30}, "lines": [line]}, frames, sv)
    assert counts["lines"]["l"] == {"east": {"car": 1}, "west": {}}


def test_scoring_ignores_boxes_on_hidden_objects() -> None:
    trackers_eval = pytest.importorskip("trackers.eval")
    from edgekit.analytics.scoring import _not_on

    truth = np.array([[0, 0, 10, 10], [50, 50, 70, 70]], np.float32)
    tracked = np.array([[1, 1, 10, 10], [50, 50, 69, 70], [200, 200, 210, 210]], np.float32)
    scored = np.array([True, False])  # the second object is more than 70% hidden
    # A box on the hidden object is neither right nor wrong; one on nothing stays an FP.
    keep = _not_on(trackers_eval.box_iou, tracked, truth, scored, 0.5)
    assert keep.tolist() == [True, False, True]


def test_sample_model_tracks_and_counts_the_generated_road() -> None:
    """The sample detector + the sample config (BoT-SORT per class, low-score boxes for the
    tracker, lost tracks stitched) on 15 s of testsrc://, as `make demo` runs it (seed 3),
    scored against the generator's truth.

    IDF1 0.853 and MOTA 0.735 here (benchmarks/tracking_accuracy.py; 0.697 and 0.699 with
    plain ByteTrack), 2 of 37 count events missed, none false: short of the 0.9 the issue aims
    at, as a perfect tracker given the same detections reaches IDF1 0.90 (detector_ceiling).
    Plain ByteTrack's exact totals here were errors that cancelled: two eastbound vehicles
    missed, against a westbound truck also counted eastbound and a parked bus counted as it
    was uncovered.
    """
    pytest.importorskip("trackers.eval")
    from edgekit.analytics import load_config
    from edgekit.analytics.scoring import score_testsrc
    from edgekit.detector import Detector

    config = load_config(Path(__file__).parents[2] / "samples" / "vehicle_counting.yaml")
    score = score_testsrc(Detector.open("sample"), config, seed=3, objects=5, fps=15,
                          frames=225)
    assert score.expected["zone:junction"] > 0 and score.expected[
        "line:counting_line:eastbound"] > 0
    assert score.events_expected >= 30
    assert score.events_missed + score.events_false <= 8
    assert score.idf1 >= 0.80 and score.mota >= 0.72


def test_reference_model_meets_the_aim_on_the_demo_road(tmp_path: Path) -> None:
    """The reference detector (`edgekit export reference`, 640) with the sample config on the
    demo's seed 3: IDF1 0.957, MOTA 0.920, and all 38 count events right (lines and zone)
    on this machine. Seeds 6-19 average IDF1 0.923, 20-34 0.894, 110-124 0.935, the unseen
    125-139 0.937 (benchmarks/tracking_accuracy.py): IDF1 holds on most sets, exact counts
    on few sequences (5 of 15 on 125-139). One event of
    slack: fp32 sums in another order on another CPU can move a score across a threshold."""
    pytest.importorskip("trackers.eval")
    import subprocess
    import sys

    from edgekit.analytics import load_config
    from edgekit.analytics.scoring import score_testsrc
    from edgekit.detector import Detector

    bundle = tmp_path / "reference"
    subprocess.run([sys.executable, "-m", "edgekit", "export", "reference", "-o", str(bundle),
                    "--to", "onnx", "--precision", "fp32"], check=True,
                   capture_output=True, timeout=600)
    config = load_config(Path(__file__).parents[2] / "samples" / "vehicle_counting.yaml")
    score = score_testsrc(Detector.open(bundle), config, seed=3, objects=5, fps=15,
                          frames=225)
    assert score.events_expected >= 30
    assert score.events_missed + score.events_false <= 1
    assert score.idf1 >= 0.9 and score.mota >= 0.85


class _Oracle:
    """A "detector" that returns the generator's own boxes of the frame it is given (frames
    are asked for in order), with no class confusion and nothing missed."""

    labels = ["car", "truck", "bus", "motorcycle", "bicycle", "pedestrian", "traffic_light"]

    def __init__(self, seed: int, boxes: bool = True) -> None:
        self.scene, self.index, self.boxes = SceneGenerator(width=640, height=480, seed=seed,
                                                            objects=5), 0, boxes

    def __call__(self, image: np.ndarray):
        from edgekit.types import Detections

        self.index += 1
        truth = self.scene.truth(self.index)
        keep = truth.labelled if self.boxes else np.zeros(len(truth.xyxy), bool)
        return Detections(truth.xyxy[keep], np.ones(int(keep.sum()), np.float32),
                          truth.class_id[keep])


def test_the_ceiling_is_what_the_detector_allows() -> None:
    pytest.importorskip("trackers.eval")
    from edgekit.analytics.scoring import detector_ceiling

    best = detector_ceiling(_Oracle(3), seed=3, frames=30)
    assert (best.mota, best.idf1) == (1.0, 1.0)
    blind = detector_ceiling(_Oracle(3, boxes=False), seed=3, frames=30)
    assert blind.mota == 0.0 and blind.idf1 == 0.0


def test_count_events_do_not_cancel_out() -> None:
    """Totals hide a missed car and a parked bus counted in its place; the events do not."""
    from edgekit.analytics.scoring import _Event, match_events

    s = 10**9
    expected = [_Event("line:l:east", 7, 3 * s), _Event("zone:z", 7, 4 * s)]
    # The car's crossing counted 1 s late (matched); the bus (object 9) counted instead of
    # the car's zone entry: the totals agree, the events do not.
    measured = [_Event("line:l:east", 7, 4 * s), _Event("zone:z", 9, 4 * s)]
    assert match_events(expected, measured, end_ns=15 * s) == (2, 1, 1)
    # Too late to match (over 2 s apart): a miss and a false count.
    assert match_events(expected[:1], [_Event("line:l:east", 7, 6 * s)],
                        end_ns=15 * s) == (1, 1, 1)
    # In the last 2 s, an unmatched event is left out: its partner may come after the cut.
    assert match_events([_Event("line:l:east", 7, 14 * s)], [], end_ns=15 * s) == (0, 0, 0)
    assert match_events([], [_Event("zone:z", 9, 14 * s)], end_ns=15 * s) == (0, 0, 0)


def test_a_perfect_tracker_misses_and_invents_no_count_event() -> None:
    """The generator's own boxes as detections: every count event matches the truth's."""
    pytest.importorskip("trackers.eval")
    from edgekit.analytics import load_config
    from edgekit.analytics.scoring import score_testsrc
    from edgekit.data.synth import LABELS

    config = load_config(Path(__file__).parents[2] / "samples" / "vehicle_counting.yaml")
    oracle = _Oracle(3)
    oracle.labels = list(LABELS)
    score = score_testsrc(oracle, config, seed=3, frames=90)
    assert score.events_expected > 0
    assert (score.events_missed, score.events_false) == (0, 0)


def test_the_ceiling_counts_what_the_detectors_boxes_allow() -> None:
    """The count events a perfect tracker gets wrong with a detector's boxes: none with the
    generator's own boxes; with a detector blind to one vehicle, that vehicle's events are
    missed, and nothing is counted that was not there."""
    pytest.importorskip("trackers.eval")
    import supervision as sv

    from edgekit.analytics import Analytics, load_config
    from edgekit.analytics.scoring import detector_ceiling
    from edgekit.data.synth import LABELS
    from edgekit.types import Detections

    config = load_config(Path(__file__).parents[2] / "samples" / "vehicle_counting.yaml")
    oracle = _Oracle(3)
    oracle.labels = list(LABELS)
    best = detector_ceiling(oracle, seed=3, frames=90, config=config)
    assert best.events_expected > 0 and (best.events_missed, best.events_false) == (0, 0)

    # The vehicle of the first count event on the truth, in the first 3 s.
    counter = Analytics(config, list(LABELS))
    blind_to = None
    for index in range(1, 46):
        truth = oracle.scene.truth(index)
        events = counter.count((640, 480), sv.Detections(
            xyxy=truth.xyxy, class_id=truth.class_id, tracker_id=truth.track_id,
            confidence=np.ones(len(truth.xyxy), np.float32)), int(index * 1e9 / 15))
        if events:
            blind_to = events[0]["tracker_id"]
            break
    assert blind_to is not None

    class Blind(_Oracle):
        def __call__(self, image: np.ndarray) -> Detections:
            self.index += 1
            truth = self.scene.truth(self.index)
            keep = truth.labelled & (truth.track_id != blind_to)
            return Detections(truth.xyxy[keep], np.ones(int(keep.sum()), np.float32),
                              truth.class_id[keep])

    blind = Blind(3)
    blind.labels = list(LABELS)
    missing = detector_ceiling(blind, seed=3, frames=90, config=config)
    assert missing.events_missed >= 1 and missing.events_false == 0

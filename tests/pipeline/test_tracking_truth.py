"""Tracking a counter can trust: testsrc:// knows its ground truth, the scoring uses it, and a
zone does not count a track's return after a missed detection as a new entry."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.analytics import parse_config
from edgekit.analytics.analytics import Analytics
from edgekit.sources.testsrc import SceneGenerator


def test_truth_boxes_are_where_the_vehicles_are_drawn() -> None:
    scene = SceneGenerator(width=320, height=240, seed=3, objects=3)
    still = len(scene.still_boxes)
    for index in (1, 40, 80):
        image, truth = scene.render(index), scene.truth(index)
        moving = truth.xyxy[still:]
        assert len(moving) <= 3 and (truth.track_id[:still] >= 10**9).all()
        # The last mover is drawn on top: its box holds exactly its patch's pixels.
        mover = scene.movers[-1]
        box = [b for b, t in zip(moving, truth.track_id[still:], strict=True)
               if t // 100_000 == len(scene.movers) - 1]
        if box:
            x0, y0, x1, y1 = (int(v) for v in box[0])
            x, _ = scene._place(mover, index)
            # The vehicle is an RGBA sprite, as the training scenes draw it: its own pixels
            # (alpha > 0) are in the frame, the background shows around them.
            local = mover.patch[:, x0 - x:x1 - x]
            drawn = local[..., 3] > 0
            assert drawn.any() and not drawn.all()
            assert np.array_equal(image[y0:y1, x0:x1][drawn], local[..., :3][drawn])


def test_a_vehicle_that_comes_round_again_is_a_new_object() -> None:
    scene = SceneGenerator(width=320, height=240, seed=3, objects=1)
    still = len(scene.still_boxes)
    ids = {int(t) for i in range(1, 400) for t in scene.truth(i).track_id[still:]}
    assert len(ids) >= 2  # wrapped round at least once: each pass has its own id


def _tracked(sv, boxes: list[tuple[int, list[float]]]):
    return sv.Detections(xyxy=np.array([b for _, b in boxes], np.float32).reshape(-1, 4),
                         class_id=np.zeros(len(boxes), int),
                         confidence=np.ones(len(boxes), np.float32),
                         tracker_id=np.array([t for t, _ in boxes], int))


def test_zone_keeps_a_track_through_a_short_miss_and_ends_it_after_a_long_one() -> None:
    sv = pytest.importorskip("supervision")
    config = parse_config({"tracker": {"lost_track_buffer": 3},
                           "zones": [{"name": "z", "polygon": [[0, 0], [100, 0], [100, 100],
                                                               [0, 100]]}]})
    analytics = Analytics(config, ["car"])
    inside, outside = [7, [40, 40, 60, 60]], [7, [140, 40, 160, 60]]
    frames = [[inside], [], [], [inside],  # missed for 2 frames: the same visit
              [], [], [], [], [inside],  # missed for longer than the buffer: a new visit
              [outside]]  # seen outside: the visit ends at once
    for i, seen in enumerate(frames):
        analytics.count((320, 240), _tracked(sv, seen), i * 10**8)
    zone = analytics.counts()["zones"]["z"]
    assert zone["entered"] == 2 and zone["occupancy"] == 0

"""The service's decisions without processes: hot swap binding, probation verdicts, waves.

The models here are plain Python detectors (image -> Detections), which the pipeline takes as
they are; the counts they return are what the probation must judge.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from edgekit.devices.flash.rollout import parse_halt, parse_waves, plan_waves
from edgekit.devices.service.config import ProbationConfig
from edgekit.devices.service.hot import HotModel, Slot
from edgekit.devices.service.probation import Probation

from edgekit.errors import EdgekitError
from edgekit.pipeline import staged
from edgekit.types import Detections

IMAGE = np.zeros((48, 64, 3), np.uint8)


def _slot(version: str, count: int, labels=("a", "b")) -> Slot:
    def detect(image: np.ndarray) -> Detections:
        boxes = np.tile([[1.0, 1.0, 10.0, 10.0]], (count, 1))
        return Detections(boxes, np.full(count, 0.9), np.zeros(count, int))

    detect.labels = list(labels)
    return Slot(version=version, model=staged(detect))


def _frame(model: HotModel) -> tuple[str, int]:
    tensor, context = model.pre(IMAGE)
    output = model.infer([tensor])[0]
    return model.tags(output)["model"], len(model.post(output, context, IMAGE.shape))


def test_a_frame_in_flight_finishes_on_the_model_that_started_it():
    model = HotModel(_slot("v1", 1))
    tensor, context = model.pre(IMAGE)  # preprocessed before the swap
    old = model.swap(_slot("v2", 3))
    output = model.infer([tensor])[0]
    assert old.version == "v1" and model.tags(output) == {"model": "v1"}
    assert len(model.post(output, context, IMAGE.shape)) == 1
    assert _frame(model) == ("v2", 3)
    with pytest.raises(ValueError, match="other class names"):
        model.swap(_slot("v3", 1, labels=("x",)))
    assert model.active.version == "v2"


def _verdict(new: Slot, old: Slot, frames: int, **config) -> object:
    model = HotModel(old)
    model.swap(new)
    probation = Probation(new, old, ProbationConfig(**{
        "frames": frames, "min_frames": 3, "shadow_every": 1, "min_compared": 4,
        "min_detections": 4, **config}))
    model.observer = probation.observe
    try:
        for _ in range(frames):
            _frame(model)
            time.sleep(0.01)  # the shadow runs beside, as beside a live camera
            verdict = probation.check()
            if verdict:
                return verdict
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            verdict = probation.check()
            if verdict:
                return verdict
            time.sleep(0.05)
        raise AssertionError("no verdict")
    finally:
        probation.close()


def test_probation_verdicts():
    healthy = _verdict(_slot("v2", 2), _slot("v1", 2), frames=12)
    assert healthy.healthy and healthy.figures["compared_frames"] >= 4
    collapsed = _verdict(_slot("v2", 0), _slot("v1", 2), frames=40)
    assert not collapsed.healthy and "collapsed: 0 vs" in collapsed.reason
    exploded = _verdict(_slot("v2", 50), _slot("v1", 2), frames=40)
    assert not exploded.healthy and "exploded" in exploded.reason
    empty_street = _verdict(_slot("v2", 0), _slot("v1", 0), frames=12)
    assert empty_street.healthy  # nothing to see for either: not a collapse
    slow = _verdict(_slot("v2", 2), _slot("v1", 2), frames=40, latency_p99_ms=1e-6)
    assert not slow.healthy and "over the SLO" in slow.reason and \
        slow.figures["slo_source"] == "config"


def test_probation_counts_errors():
    new, old = _slot("v2", 2), _slot("v1", 2)
    probation = Probation(new, old, ProbationConfig())
    new.errors, new.last_error = 2, "inference failed: boom"
    try:
        verdict = probation.check()
    finally:
        probation.close()
    assert not verdict.healthy and "2 errors" in verdict.reason and "boom" in verdict.reason


def test_waves_and_halt_parsing():
    names = [f"d{i}" for i in range(100)]
    waves = plan_waves(names, 1, parse_waves("10%,50%,100%"))
    assert [len(w) for w in waves] == [1, 9, 40, 50] and sum(waves, []) == names
    assert [len(w) for w in plan_waves(names[:3], 1, (0.1, 0.5, 1.0))] == [1, 0, 1, 1]
    assert parse_halt("5%") == 0.05 and parse_halt("2") == 2
    for bad in ("50%,10%", "10%,50%", "x"):
        with pytest.raises(EdgekitError, match="--waves"):
            parse_waves(bad)
    for bad in ("0", "1.5", "150%", "many"):
        with pytest.raises(EdgekitError, match="--halt-on"):
            parse_halt(bad)


def test_status_endpoint_token():
    import json
    import urllib.error
    import urllib.request

    from edgekit.devices.service.status import StatusServer

    with pytest.raises(EdgekitError, match="has no token"):
        StatusServer("0.0.0.0:0", None, dict)
    server = StatusServer("127.0.0.1:0", "s3cret", lambda: {"service": {"version": "v7"}})
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url, timeout=5)
        assert refused.value.code == 401
        request = urllib.request.Request(server.url, headers={"Authorization": "Bearer s3cret"})
        assert json.loads(urllib.request.urlopen(request, timeout=5).read()) == \
            {"service": {"version": "v7"}}
    finally:
        server.stop()

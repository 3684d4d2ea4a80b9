"""Many cameras, one inference call: a batch-4 artifact shared by live cameras, one of them
dead; every result must reach the camera whose frame it was."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from edgekit.export import export
from pipeline_helpers import free_port

from edgekit.detector import Detector
from edgekit.pipeline import Pipeline
from edgekit.sinks.base import Result, Sink

# Four scenes that differ (seed, number of vehicles): a result handed to the wrong camera
# would carry another scene's detections.
LIVE = {f"cam{i}": f"testsrc://?fps=8&width=320&height=240&seed={10 + i}&objects={i * 2}"
        for i in range(4)}


class Collect(Sink):
    """Keeps every result in memory (the pipeline's real sink interface, in its own thread)."""

    def __init__(self) -> None:
        super().__init__("memory://")
        self.results: list[Result] = []
        self._lock = threading.Lock()

    def write(self, result: Result) -> None:
        with self._lock:
            self.results.append(result)


@pytest.fixture(scope="module")
def batch4(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("multicam") / "bundle"
    export("sample", out, formats=("onnx",), batch=4)
    return out


def test_four_live_cameras_and_a_dead_one_share_batches(batch4: Path) -> None:
    detector = Detector.open(batch4)
    assert detector.backend.batch == 4
    dead = f"http://127.0.0.1:{free_port()}/nobody.mjpg"  # refused: reconnects forever
    sink = Collect()
    names = [*LIVE, "dead"]
    pipeline = Pipeline(detector, [*LIVE.values(), dead], [sink], names=names)
    summary = pipeline.run(duration=8)

    cams = summary["cameras"]
    assert cams["dead"]["frames_out"] == 0
    for name in LIVE:  # the dead camera stalls nobody
        assert cams[name]["frames_out"] >= 15, (name, cams[name])
    sizes = summary["batch_sizes"]
    assert max(sizes) <= 4 and sum(n for size, n in sizes.items() if size > 1) > 0, sizes

    by_camera: dict[str, list[Result]] = {}
    for result in sink.results:
        by_camera.setdefault(result.camera, []).append(result)
    assert set(by_camera) == set(LIVE)
    alone = Detector.open(batch4)  # each frame again, on its own, as the reference
    for name, results in by_camera.items():
        assert all(r.frame.source_id == LIVE[name] for r in results)
        for result in results[::4]:
            want = alone(result.frame.image)
            assert len(result.detections) == len(want), name
            np.testing.assert_allclose(result.detections.xyxy, want.xyxy, atol=0.5)
    firsts = [by_camera[name][0].frame.image for name in LIVE]
    assert all(not np.array_equal(a, b) for i, a in enumerate(firsts) for b in firsts[i + 1:])

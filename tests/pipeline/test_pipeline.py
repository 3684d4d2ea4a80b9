"""The pipeline on real (tiny) models: every file frame in order, shared runner, broken sinks."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_helpers import write_video

from edgekit.errors import UnknownNameError
from edgekit.pipeline import Pipeline, StagedModel
from edgekit.sinks import open_sink
from edgekit.types import Detections


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_file_source_processes_every_frame_in_order(detector, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 12)
    out, events = tmp_path / "out.mp4", tmp_path / "det.jsonl"
    summary = Pipeline(detector, [str(video)], [str(out), str(events)]).run()
    records = _jsonl(events)
    assert [r["index"] for r in records] == list(range(12))
    assert [d["label"] for d in records[0]["detections"]] == ["class1", "class2"]
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    capture.release()
    assert summary["frames_in"] == summary["frames_out"] == 12
    assert summary["dropped"] == 0
    for stage in ("preprocess", "inference", "postprocess"):
        assert summary["stages_ms"][stage]["count"] == 12
    assert summary["end_to_end_ms"]["count"] == 24  # two sinks, each frame once
    assert {"p50", "p90", "p99"} <= set(summary["frame_age_ms"])


def test_image_folder_to_an_images_sink_keeps_the_input_names(detector,
                                                              tmp_path: Path) -> None:
    """The sink `edgekit predict` writes through: ``out/`` gives one annotated JPEG per input,
    named after it (two inputs sharing a stem keep their suffixes apart)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "a.jpg", "b.png"):
        cv2.imwrite(str(photos / name), np.full((32, 32, 3), 90, np.uint8))
    out = tmp_path / "annotated"
    summary = Pipeline(detector, [str(photos)], [f"{out}/"]).run()
    assert summary["frames_out"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg.jpg", "a_png.jpg", "b.jpg"]
    assert cv2.imread(str(out / "b.jpg")).shape == (32, 32, 3)


def test_two_cameras_share_one_runner_and_batch(tmp_path: Path) -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def infer(images: list[np.ndarray]) -> list[Detections]:
        with lock:
            calls.append(len(images))
        time.sleep(0.002)
        return [Detections([[1, 1, 5, 5]], [0.9], [0]) for _ in images]

    model = StagedModel(pre=lambda im: (im, None), infer=infer,
                        post=lambda out, _c, _s: out, labels=["car"], batch=4)
    a, b = (write_video(tmp_path / f"{n}.mp4", 10) for n in "ab")
    jsonl = tmp_path / "all.jsonl"
    summary = Pipeline(model, [str(a), str(b)], [str(jsonl)], names=["north", "south"]).run()
    records = _jsonl(jsonl)
    for cam in ("north", "south"):
        assert [r["index"] for r in records if r["camera"] == cam] == list(range(10))
    assert sum(calls) == 20 and max(calls) <= 4
    assert summary["cameras"]["north"]["frames_out"] == summary["cameras"]["south"]["frames_out"]


def test_a_board_runner_callable_plugs_in(tmp_path: Path) -> None:
    runner_calls = []

    class Runner:  # what edgekit.devices.runners hands over: image -> Detections
        labels = ["car", "bus"]

        def __call__(self, image: np.ndarray) -> Detections:
            runner_calls.append(image.shape)
            return Detections([[0, 0, 10, 10]], [0.8], [1])

    jsonl = tmp_path / "r.jsonl"
    Pipeline(Runner(), [str(write_video(tmp_path / "c.mp4", 4))], [str(jsonl)]).run()
    assert len(runner_calls) == 4
    assert _jsonl(jsonl)[0]["detections"][0]["label"] == "bus"


class _CountingSource:
    """A live source that records whether the pipeline ever opened it."""

    @staticmethod
    def make(uri: str):
        from edgekit.sources.testsrc import TestSource

        class Source(TestSource):
            opened = 0

            def start(self) -> None:
                type(self).opened += 1
                super().start()

        return Source(uri)


@pytest.mark.parametrize("where", ["missing folder", "unwritable folder"])
def test_unwritable_sink_fails_at_start_before_the_camera_opens(
        where: str, detector, tmp_path: Path) -> None:
    from edgekit.errors import EdgekitError

    mounted = False
    if where == "missing folder":
        bad, words = tmp_path / "missing" / "x.mp4", "does not exist"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        os.chmod(locked, 0o500)
        if os.geteuid() == 0:  # root ignores permission bits: a read-only mount stops it too
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs",
                                      str(locked)], capture_output=True).returncode == 0
            if not mounted:
                pytest.skip("running as root without the right to mount a read-only tmpfs")
        bad, words = locked / "x.jsonl", "not writable"
    good = tmp_path / "good.jsonl"
    camera = _CountingSource.make("testsrc://?fps=10&width=64&height=64&objects=1")
    try:
        with pytest.raises(EdgekitError) as info:
            Pipeline(detector, [camera], [str(good), str(bad)]).run(duration=5)
    finally:
        if mounted:
            subprocess.run(["umount", str(locked)], check=True)
    assert str(bad) in info.value.message and words in info.value.message
    assert type(camera).opened == 0


def test_sink_failing_mid_run_does_not_stop_the_others(detector, tmp_path: Path) -> None:
    from edgekit.sinks.base import Sink

    class Failing(Sink):
        def write(self, result) -> None:
            if result.frame.index == 2:
                raise OSError("No space left on device")

    good = tmp_path / "good.jsonl"
    video = write_video(tmp_path / "clip.mp4", 6)
    summary = Pipeline(detector, [str(video)], [Failing("disk"), str(good)]).run()
    assert "No space left" in summary["sink_errors"]["disk"]
    assert len(_jsonl(good)) == 6


def test_resolution_change_mid_stream_keeps_boxes_and_video(detector, tmp_path: Path) -> None:
    for i, (h, w) in enumerate([(32, 32), (32, 32), (64, 64), (64, 64)]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((h, w, 3), np.uint8))
    out, jsonl = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    Pipeline(detector, [str(tmp_path / "*.png")], [str(out), str(jsonl)]).run()
    boxes = [r["detections"][0]["xyxy"] for r in _jsonl(jsonl)]
    # The model sees 32x32 input: its box doubles on the 64x64 frames.
    assert boxes[0] == boxes[1] and boxes[2] == [2 * v for v in boxes[0]]
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    capture.release()


def test_live_source_faster_than_inference_drops_instead_of_lagging() -> None:
    def slow(image: np.ndarray) -> Detections:
        time.sleep(0.04)  # a 25 fps model on a 100 fps camera
        return Detections.empty()

    pipeline = Pipeline(slow, ["testsrc://?fps=100&width=96&height=64&objects=1"])
    summary = pipeline.run(duration=2.0)
    cam = summary["cameras"]["cam0"]
    assert cam["frames_out"] > 0
    assert cam["dropped"] > 0 and cam["frames_in"] > cam["frames_out"]
    # Never more than one frame waits per live camera, so nothing piles up.
    assert cam["frames_in"] - cam["frames_out"] - cam["dropped"] <= 3


def test_unknown_sink_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        open_sink("out.gif")
    assert ".mp4" in info.value.hint and "mqtt://" in info.value.hint


def test_window_sink_without_display_is_a_clear_error(detector, tmp_path: Path) -> None:
    from edgekit.errors import EdgekitError

    video = write_video(tmp_path / "clip.mp4", 2)
    env = os.environ.pop("DISPLAY", None)
    try:
        with pytest.raises(EdgekitError, match="display"):
            Pipeline(detector, [str(video)], ["window"]).run()
    finally:
        if env is not None:
            os.environ["DISPLAY"] = env


def test_low_score_boxes_reach_the_tracker_alone(tmp_path: Path) -> None:
    """tracker.detection_conf: the pipeline decodes boxes down to it for the tracker and
    reports a box under the model's own threshold only where it extends a track."""
    pytest.importorskip("trackers")
    from edgekit.analytics import parse_config
    from edgekit.detector import Detector
    from edgekit.sources.testsrc import SceneGenerator

    scene = SceneGenerator(width=640, height=480, seed=3, objects=5)
    video = tmp_path / "road.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15, (640, 480))
    for index in range(1, 91):
        writer.write(scene.render(index))
    writer.release()
    detector = Detector.open("sample")
    threshold = detector.manifest.output.conf_threshold
    reported = {}
    for low in (None, 0.05):
        tracker = {"type": "botsort", "frame_rate": 15}
        if low is not None:
            tracker["detection_conf"] = low
        events = tmp_path / f"{low}.jsonl"
        pipeline = Pipeline(detector, [str(video)], [str(events)],
                            analytics=parse_config({"tracker": tracker}))
        assert pipeline.run()["frames_out"] == 90
        reported[low] = [d for r in _jsonl(events) for d in r["detections"]]
    assert all(d["confidence"] >= threshold for d in reported[None])
    under = [d for d in reported[0.05] if d["confidence"] < threshold]
    assert under and all(d["tracker_id"] >= 0 for d in under)
    assert all(d["confidence"] >= threshold for d in reported[0.05] if d["tracker_id"] < 0)

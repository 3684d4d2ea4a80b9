"""Runs fail loudly: frames that keep failing stop the run with the first error, exit non-zero."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from pipeline_helpers import write_video

from edgekit.pipeline import Pipeline, PipelineSettings
from edgekit.pipeline.health import Health, HealthSettings


def test_error_rate_must_stay_above_the_threshold_for_the_window() -> None:
    health = Health(HealthSettings(max_error_rate=0.5, window_s=3))
    health.error("cam0", "inference failed: boom")
    health.error("cam0", "inference failed: again")
    assert health.check(processed=1, now=0.0) is None  # 2 of 3 failed, but only just now
    assert health.check(processed=2, now=1.0) is None  # no new error: 0% in this interval
    for t in (2.0, 3.0, 4.0):
        health.error("cam1", "postprocess failed")
        assert health.check(processed=2, now=t) is None
    health.error("cam1", "postprocess failed")
    failure = health.check(processed=2, now=5.0)
    assert failure is not None and "for 3 s" in failure["reason"]
    assert failure["first_error"] == {"camera": "cam0", "error": "inference failed: boom"}


def test_a_few_bad_frames_do_not_fail_a_run() -> None:
    health = Health(HealthSettings(max_error_rate=0.5, window_s=1))
    for t in range(10):
        health.error("cam0", "corrupt packet")
        assert health.check(processed=10 * (t + 1), now=float(t)) is None
    assert health.final(processed=100) is None


def test_every_frame_failing_is_a_failure_at_the_end() -> None:
    health = Health(HealthSettings(max_error_rate=1.0))
    health.error("cam0", "preprocess failed")
    assert health.check(processed=0, now=100.0) is None  # the rate rule is switched off
    assert "every frame failed" in health.final(processed=0)["reason"]


def _broken_model(path: Path) -> Path:
    """A YOLO-shaped ONNX model that onnxruntime loads and that fails on every run: its head
    adds the mean of the 1x3x32x32 image reshaped to [7, 7], which cannot be."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["images", "shape"], ["r"]),
         helper.make_node("ReduceMean", ["r"], ["m"], keepdims=0),
         helper.make_node("Add", ["head", "m"], ["output0"])], "broken",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, 10])],
        [numpy_helper.from_array(np.array([7, 7], np.int64), "shape"),
         numpy_helper.from_array(np.zeros((1, 7, 10), np.float32), "head")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def test_a_run_whose_frames_all_fail_exits_non_zero_with_the_first_error(tmp_path: Path) -> None:
    model = _broken_model(tmp_path / "broken.onnx")
    result = subprocess.run(
        [sys.executable, "-m", "edgekit", "run", str(model), "--source",
         "testsrc://?fps=20&width=96&height=64", "--duration", "60", "--error-window", "1",
         "--quiet", "--json", str(tmp_path / "s.json")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "the run failed" in result.stderr and "inference failed" in result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["duration_s"] < 30  # stopped by the window, not by --duration
    assert summary["failed"]["first_error"]["camera"] == "cam0"
    assert "Reshape" in summary["failed"]["first_error"]["error"]
    assert summary["frames_out"] == 0 and summary["errors"] > 0


def test_a_healthy_run_reports_no_failure(detector, tmp_path: Path) -> None:
    video = write_video(tmp_path / "c.mp4", 5)
    summary = Pipeline(detector, [str(video)], settings=PipelineSettings()).run(duration=30)
    assert summary["frames_out"] == 5
    assert summary["failed"] is None and summary["first_error"] is None

"""`edgekit run` end to end in a subprocess: outputs, summary JSON, clean errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
from pipeline_helpers import write_video


def edgekit(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_run_on_a_file_writes_video_events_and_summary(tiny_model: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 8)
    config = tmp_path / "a.toml"
    config.write_text('relative = true\n[[zones]]\nname = "all"\n'
                      "polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]\n")
    result = edgekit("run", tiny_model, "--source", video, "--sink", tmp_path / "out.mp4",
                     "--sink", tmp_path / "ev.jsonl", "--config", config, "--json",
                     tmp_path / "s.json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames_in"] == summary["frames_out"] == 8
    assert summary["dropped"] == 0 and summary["reconnects"] == 0
    for key in ("fps_in", "fps_out", "stages_ms", "frame_age_ms", "end_to_end_ms", "model"):
        assert key in summary
    assert {"p50", "p90", "p99"} <= set(summary["stages_ms"]["inference"])
    assert summary["cameras"]["cam0"]["analytics"]["zones"]["all"]["entered"] == 2
    assert summary["events"] == {"zone_enter": 2}
    lines = (tmp_path / "ev.jsonl").read_text().splitlines()
    assert len(lines) == 8
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    capture.release()
    # The summary is a result (stdout); analytics are a table, not a Python dict.
    assert "stage latency" in result.stdout and "cam0" in result.stdout
    assert "zone all" in result.stdout and "{'lines'" not in result.stdout + result.stderr


def test_run_live_for_a_duration(tiny_model: Path, tmp_path: Path) -> None:
    result = edgekit("run", tiny_model, "--source", "testsrc://?fps=20&width=96&height=64",
                     "--duration", "1.5", "--json", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames_out"] > 0 and summary["frame_age_ms"]["count"] > 0


def test_ctrl_c_stops_cleanly_with_a_summary(tiny_model: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "run", str(tiny_model),
                             "--source", "testsrc://?fps=20&width=96&height=64", "--json",
                             str(tmp_path / "s.json"), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "Ctrl-C" not in (proc.stderr.readline() or "x"):
            pass
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads((tmp_path / "s.json").read_text())["frames_out"] > 0


def test_unknown_scheme_and_bad_config_exit_2_without_traceback(tiny_model: Path,
                                                                 tmp_path: Path) -> None:
    result = edgekit("run", tiny_model, "--source", "foo://cam")
    assert result.returncode == 2
    assert "Unknown source scheme 'foo://'" in result.stderr and "rtsp://" in result.stderr
    assert "Traceback" not in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("lines: [{name: x, start: [0, 0]}]\n")
    result = edgekit("run", tiny_model, "--source", "testsrc://", "--config", bad)
    assert result.returncode == 2 and "needs name, start and end" in result.stderr
    assert "Traceback" not in result.stderr

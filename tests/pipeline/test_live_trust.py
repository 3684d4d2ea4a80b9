"""Live runs a user can trust: a dead camera fails loudly in edgekit's own words, a camera that
dies mid-run keeps reconnecting and its downtime is reported, videos play at the real speed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
from pipeline_helpers import free_port, wait_for, write_video

from edgekit.pipeline import Pipeline
from edgekit.sources import SourceSettings, open_source


def edgekit(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_dead_camera_fails_after_the_connect_timeout(tiny_model: Path, tmp_path: Path) -> None:
    uri = f"rtsp://127.0.0.1:{free_port()}/cam"  # nothing listens there
    result = edgekit("run", tiny_model, "--source", uri, "--connect-timeout", "2", "--quiet",
                     "--json", tmp_path / "s.json")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{uri}: no frame within 2 s" in result.stderr and "--connect-timeout" in result.stderr
    assert "retry 1 in 0.25 s" in result.stderr and "retry 2 in 0.50 s" in result.stderr
    # OpenCV's and FFmpeg's own lines stay off the terminal.
    assert "[tcp @" not in result.stderr and "VIDEOIO" not in result.stderr
    cam = json.loads((tmp_path / "s.json").read_text())["cameras"]["cam0"]
    assert cam["status"] == "failed" and cam["reconnects"] >= 2 and cam["frames_in"] == 0


def test_a_run_that_never_got_a_frame_does_not_exit_0(tiny_model: Path) -> None:
    uri = f"rtsp://127.0.0.1:{free_port()}/cam"
    result = edgekit("run", tiny_model, "--source", uri, "--duration", "1.5", "--quiet")
    assert result.returncode == 2 and "no frame in" in result.stderr


def test_a_camera_that_worked_keeps_reconnecting_and_reports_its_downtime(mjpeg_server) -> None:
    # A connect timeout shorter than the outage: it applies only before the first frame.
    settings = SourceSettings(open_timeout_s=3.0, read_timeout_s=1.0, backoff_initial_s=0.1,
                              backoff_max_s=0.5, connect_timeout_s=1.0)
    source = open_source(mjpeg_server.url, settings=settings)
    mjpeg_server.start()
    with source:
        assert wait_for(lambda: source.read(0.5) is not None)
        mjpeg_server.kill()
        assert wait_for(lambda: source.stats.down_since is not None)
        tries = source.stats.reconnects
        time.sleep(2.0)
        assert source.stats.status != "failed" and source.stats.reconnects > tries
        mjpeg_server.start()
        start = source.stats.frames
        assert wait_for(lambda: source.read(0.5) is not None and source.stats.frames > start)
        assert source.stats.down_since is None and source.stats.down_s() >= 2.0
        assert source.stats.last_error == ""  # streaming again: no stale error


def test_video_of_a_file_plays_at_the_files_rate(detector, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 12)  # written at 10 fps
    out = tmp_path / "out.mp4"
    summary = Pipeline(detector, [str(video)], [str(out)]).run()
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == 10 and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 12
    capture.release()
    assert "mp4v" in summary["sinks"][str(out)] or "avc1" in summary["sinks"][str(out)]


def test_video_of_a_live_source_lasts_as_long_as_what_it_shows(detector, tmp_path: Path) -> None:
    out, events = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    Pipeline(detector, ["testsrc://?fps=10&width=96&height=64&objects=1"],
             [str(out), str(events)]).run(duration=4.0)
    stamps = [json.loads(x)["timestamp_ns"] for x in events.read_text().splitlines()]
    shown_s = (stamps[-1] - stamps[0]) / 1e9 * len(stamps) / (len(stamps) - 1)
    capture = cv2.VideoCapture(str(out))
    frames, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert frames == len(stamps)
    # Not the old fixed 25 fps (2.5x too fast for this camera): the file lasts as long as the
    # stretch of time its frames were captured over.
    assert abs(frames / fps - shown_s) / shown_s < 0.25, (frames, fps, shown_s)

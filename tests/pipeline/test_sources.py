"""Sources by URI: which class reads what, files in order, live sources newest-only."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_helpers import wait_for, write_video

from edgekit.errors import DatasetError, EdgekitError, MissingDependencyError, UnknownNameError
from edgekit.sources import SourceSettings, open_source, source_kind
from edgekit.sources.capture import csi_pipeline


@pytest.mark.parametrize(("uri", "kind"), [
    ("clip.mp4", "video"), ("file:///data/clip.mkv", "video"), ("frames/*.jpg", "images"),
    ("/dev/video0", "v4l2"), ("0", "v4l2"), ("v4l2:///dev/video2", "v4l2"),
    ("rtsp://cam/stream", "stream"), ("http://cam/x.mjpg", "stream"),
    ("https://cam/x.mjpg", "stream"), ("csi://0", "csi"), ("picam://0", "picam"),
    ("testsrc://?fps=5", "testsrc"),
])
def test_uri_picks_the_source(uri: str, kind: str) -> None:
    assert source_kind(uri) == kind


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        open_source("ftp://host/video.mp4")
    assert "ftp://" in info.value.message
    for scheme in ("rtsp://", "http://", "csi://", "picam://", "testsrc://"):
        assert scheme in info.value.hint


def test_video_file_gives_every_frame_in_order(tmp_path: Path) -> None:
    source = open_source(str(write_video(tmp_path / "clip.mp4", 7)))
    assert not source.live
    frames = []
    with source:
        with pytest.raises(EOFError):
            while True:
                frames.append(source.read())
    assert [f.index for f in frames] == list(range(7))
    assert all(a.timestamp_ns <= b.timestamp_ns for a, b in zip(frames, frames[1:], strict=False))
    assert source.stats.frames == 7


def test_missing_video_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such video file"):
        open_source(str(tmp_path / "nope.mp4"))


def test_image_glob_skips_a_corrupt_file_and_reports_it(tmp_path: Path) -> None:
    for name, shape in (("a", (32, 40)), ("c", (48, 64))):  # two sizes: a mode change
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((*shape, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"not a png")
    source = open_source(str(tmp_path / "*.png"))
    got = []
    with pytest.raises(EOFError):
        while True:
            got.append(source.read())
    assert [None if f is None else f.image.shape[:2] for f in got] == [(32, 40), None, (48, 64)]
    assert source.stats.errors == 1 and "b.png" in source.stats.last_error


def test_live_source_keeps_only_the_newest_frame() -> None:
    source = open_source("testsrc://?fps=100&width=96&height=64&objects=1")
    assert source.live
    with source:
        assert source.read(10.0) is not None
        assert wait_for(lambda: source.stats.frames >= 20)
        frame = source.read(1.0)
        # Every frame generated while nobody read was replaced, not queued.
        assert source.stats.dropped >= 10
        assert frame.index >= source.stats.frames - 3


def test_testsrc_changes_resolution_mid_stream() -> None:
    source = open_source("testsrc://?fps=200&width=128&height=96&resize_after=3&objects=1")
    shapes = set()
    wanted = {(96, 128, 3), (72, 96, 3)}

    def seen_both() -> bool:
        frame = source.read(0.5)
        if frame is not None:
            shapes.add(frame.image.shape)
        return wanted <= shapes

    with source:
        assert wait_for(seen_both)


def test_offline_camera_at_start_is_retried_not_fatal() -> None:
    settings = SourceSettings(backoff_initial_s=0.05, backoff_max_s=0.1, read_timeout_s=0.5)
    source = open_source("/dev/video99", settings=settings)
    with source:
        assert source.read(0.2) is None
        assert wait_for(lambda: source.stats.errors >= 3)
        assert source.stats.status == "offline (retrying)"
    t0 = time.monotonic()
    source.close()
    assert time.monotonic() - t0 < 5  # bound on a hang


def test_csi_pipeline_string() -> None:
    pipeline = csi_pipeline(1, width=1920, height=1080, fps=30, flip=2)
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1 ! ")
    assert "width=1920,height=1080,framerate=30/1" in pipeline
    assert "flip-method=2" in pipeline and pipeline.endswith("appsink drop=1 max-buffers=1 "
                                                             "sync=false")
    assert open_source("csi://1?width=1920&height=1080&flip=2&junk=3").pipeline == csi_pipeline(
        1, width=1920, height=1080, flip=2)


def test_csi_needs_gstreamer_opencv() -> None:
    # pip's OpenCV has no GStreamer: the error says what to install instead.
    with pytest.raises(EdgekitError, match="GStreamer"):
        open_source("csi://0").start()


def test_picam_needs_picamera2() -> None:
    with pytest.raises(MissingDependencyError, match="picamera2"):
        open_source("picam://0").start()


def test_bad_testsrc_option() -> None:
    with pytest.raises(DatasetError, match="testsrc"):
        open_source("testsrc://?fps=fast")

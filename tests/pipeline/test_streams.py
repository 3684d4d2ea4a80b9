"""Live streams from real servers: frames arrive, a killed server is reconnected, a frozen
one never hangs the reader, an unreachable camera does not stop the others."""

from __future__ import annotations

import time

from pipeline_helpers import wait_for

from edgekit.pipeline import Pipeline, PipelineSettings
from edgekit.sources import SourceSettings, open_source

FAST = SourceSettings(open_timeout_s=3.0, read_timeout_s=1.0, backoff_initial_s=0.1,
                      backoff_max_s=0.5)


def _frames_after(source, count: int) -> bool:
    start = source.stats.frames
    return wait_for(lambda: source.read(0.5) is not None and source.stats.frames >= start + count)


def _reconnect_cycle(server, source) -> None:
    server.start()
    with source:
        assert _frames_after(source, 3), source.stats
        frame = source.read(2.0)
        assert frame is not None and frame.image.shape == (240, 320, 3)
        server.kill()
        assert wait_for(lambda: source.stats.reconnects >= 1 or not source.stats.connected)
        server.start()
        assert _frames_after(source, 3), source.stats
        assert source.stats.reconnects >= 1
        assert source.stats.reconnect_times_s  # time from loss to the first new frame


def test_mjpeg_stream_reconnects_after_the_server_returns(mjpeg_server) -> None:
    _reconnect_cycle(mjpeg_server, open_source(mjpeg_server.url, settings=FAST))


def test_rtsp_stream_reconnects_after_the_server_returns(rtsp_server) -> None:
    _reconnect_cycle(rtsp_server, open_source(rtsp_server.url, settings=FAST))


def test_frozen_mjpeg_server_does_not_hang_and_recovers(mjpeg_server) -> None:
    source = open_source(mjpeg_server.url, settings=FAST)
    mjpeg_server.start()
    with source:
        assert _frames_after(source, 2)
        mjpeg_server.freeze()
        # The read timeout turns the frozen stream into a reconnect; reads keep returning.
        assert wait_for(lambda: source.stats.reconnects >= 1)
        t0 = time.monotonic()
        source.read(0.3)
        assert time.monotonic() - t0 < 5  # a bound on a hang, not a speed figure
        mjpeg_server.kill()  # ffmpeg serves one client per run: a fresh one comes back
        mjpeg_server.start()
        assert _frames_after(source, 2), source.stats


def test_unreachable_camera_does_not_stop_the_others(detector) -> None:
    dead = "http://127.0.0.1:9/nothing.mjpg"  # port 9 (discard): nothing listens here
    pipeline = Pipeline(detector, ["testsrc://?fps=20&width=96&height=64", dead],
                        settings=PipelineSettings(source=FAST))
    pipeline.start()
    try:
        assert wait_for(lambda: pipeline.metrics.camera("cam0").frames_out >= 10)
        assert wait_for(lambda: pipeline.cameras[1].source.stats.errors >= 2)
    finally:
        pipeline.stop()
    summary = pipeline.summary()
    assert summary["cameras"]["cam1"]["frames_out"] == 0
    assert "open failed" in summary["cameras"]["cam1"]["last_error"]
    assert summary["cameras"]["cam1"]["status"] in ("stopped", "offline (retrying)")
    assert summary["cameras"]["cam0"]["frames_out"] >= 10


def test_pipeline_on_rtsp_survives_a_server_restart(rtsp_server, detector) -> None:
    rtsp_server.start()
    pipeline = Pipeline(detector, [rtsp_server.url], settings=PipelineSettings(source=FAST))
    pipeline.start()
    try:
        counters = pipeline.metrics.camera("cam0")
        assert wait_for(lambda: counters.frames_out >= 5)
        rtsp_server.kill()
        rtsp_server.start()
        before = counters.frames_out
        assert wait_for(lambda: counters.frames_out >= before + 5)
    finally:
        pipeline.stop()
    assert pipeline.summary()["cameras"]["cam0"]["reconnects"] >= 1

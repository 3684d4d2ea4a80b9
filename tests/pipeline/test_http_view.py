"""The live view: HTML page in real headless Chromium, MJPEG, /stats.json, /metrics, token."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_helpers import wait_for
from system import require_program

from edgekit.analytics import parse_config
from edgekit.pipeline import Pipeline
from edgekit.sinks.http import HttpViewSink, needs_token

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture
def live(detector):
    view = HttpViewSink("http://127.0.0.1:0")
    cfg = parse_config({"relative": True,
                        "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]})
    pipeline = Pipeline(detector, ["testsrc://?fps=15&width=160&height=120&objects=2"], [view],
                        analytics=cfg)
    pipeline.start()
    yield pipeline, view
    pipeline.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_stats_metrics_and_mjpeg(live) -> None:
    pipeline, view = live
    base = f"http://127.0.0.1:{view.port}"
    assert wait_for(lambda: json.loads(_get(base + "/stats.json")[1])["frames_out"] >= 3)
    code, body = _get(base + "/metrics")
    text = body.decode()
    assert code == 200
    assert 'edgekit_frames_out_total{camera="cam0"}' in text
    assert 'edgekit_stage_latency_ms{stage="inference",quantile="0.5"}' in text
    assert 'edgekit_frame_age_ms{camera="cam0",quantile="0.99"}' in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
    with urllib.request.urlopen(base + "/stream/cam0.mjpg", timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        head = b""
        while b"\r\n\r\n" not in head:
            head += stream.read(1)
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        image = cv2.imdecode(np.frombuffer(stream.read(length), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3)


def test_page_shows_the_stream_in_headless_chromium(live, tmp_path: Path) -> None:
    chromium = require_program("chromium", "chromium")
    pipeline, view = live
    assert wait_for(lambda: pipeline.metrics.camera("cam0").frames_out >= 3)
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=4000", "--dump-dom", view.url],
        capture_output=True, text=True, timeout=60).stdout
    assert '<figure id="cam-cam0">' in dom
    assert 'data-width="160"' in dom  # the MJPEG <img> decoded a 160-px-wide frame
    assert "cam0 streaming" in dom and "frames in" in dom


def test_token_is_required_when_set(detector) -> None:
    view = HttpViewSink("http://127.0.0.1:0?token=s3cret")
    pipeline = Pipeline(detector, ["testsrc://?fps=10&width=96&height=64&objects=1"], [view])
    pipeline.start()
    try:
        base = f"http://127.0.0.1:{view.port}"
        assert _get(base + "/")[0] == 401
        assert _get(base + "/metrics?token=wrong")[0] == 401
        assert _get(base + "/metrics?token=s3cret")[0] == 200
        request = urllib.request.Request(base + "/stats.json",
                                         headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert view.url.endswith("/?token=s3cret")
    finally:
        pipeline.stop()


def test_token_policy_by_bind_address() -> None:
    assert not needs_token("127.0.0.1") and not needs_token("localhost")
    assert not needs_token("::1")
    assert needs_token("0.0.0.0") and needs_token("192.168.1.20") and needs_token("")
    assert HttpViewSink("http://0.0.0.0:8080").token  # made up when not given
    assert HttpViewSink("http://127.0.0.1:8080").token == ""


def test_port_in_use_fails_the_run_at_start(detector, tmp_path: Path) -> None:
    from edgekit.errors import EdgekitError

    first = HttpViewSink("http://127.0.0.1:0")
    first.open()
    try:
        jsonl = tmp_path / "x.jsonl"
        from pipeline_helpers import write_video

        video = write_video(tmp_path / "c.mp4", 3)
        with pytest.raises(EdgekitError, match="cannot listen"):
            Pipeline(detector, [str(video)],
                     [str(jsonl), f"http://127.0.0.1:{first.port}"]).run()
    finally:
        first.close()

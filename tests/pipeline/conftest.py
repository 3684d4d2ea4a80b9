"""Real stream servers on 127.0.0.1 for the pipeline tests: ffmpeg (MJPEG over HTTP),
gst-rtsp-server (RTSP) and mosquitto (MQTT). Each fixture kills what it started."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from pipeline_helpers import Server, free_port, make_yolo_onnx  # noqa: E402

sys.path.insert(0, str(HERE.parent))
from system import require_gst_rtsp, require_program  # noqa: E402


@pytest.fixture
def mjpeg_server() -> Iterator[Server]:
    """ffmpeg serving a 320x240 15 fps MJPEG stream (one client per ffmpeg run)."""
    ffmpeg = require_program("ffmpeg", "ffmpeg")
    port = free_port()
    server = Server([ffmpeg, "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                     "testsrc=size=320x240:rate=15", "-c:v", "mjpeg", "-q:v", "5", "-f",
                     "mpjpeg", "-listen", "1", f"http://127.0.0.1:{port}/stream.mjpg"], port)
    server.url = f"http://127.0.0.1:{port}/stream.mjpg"
    yield server
    server.kill()


@pytest.fixture
def rtsp_server() -> Iterator[Server]:
    """gst-rtsp-server (system python's gi) serving rtsp://127.0.0.1:PORT/test."""
    python = require_gst_rtsp()
    port = free_port()
    server = Server([python, str(HERE / "rtsp_server.py"), str(port)], port)
    server.url = f"rtsp://127.0.0.1:{port}/test"
    yield server
    server.kill()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Server]:
    mosquitto = require_program("mosquitto", "mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    server = Server([mosquitto, "-c", str(conf)], port).start()
    yield server
    server.kill()


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A real ONNX detector that finds a class-1 box and a class-2 box in every image."""
    return make_yolo_onnx(tmp_path / "tiny.onnx", boxes=[(10, 12, 8, 6, 1, 0.9),
                                                          (20, 20, 6, 6, 2, 0.8)])


@pytest.fixture
def detector(tiny_model: Path):
    from edgekit.detector import Detector

    return Detector.open(tiny_model)



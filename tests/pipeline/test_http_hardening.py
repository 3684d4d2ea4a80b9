"""The live view survives hostile clients: unknown cameras, silent sockets, floods, slow drips."""

from __future__ import annotations

import socket
import stat
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pipeline_helpers import wait_for

from edgekit.errors import EdgekitError
from edgekit.pipeline import Pipeline
from edgekit.sinks.http import HttpViewSink

CAMS = ["testsrc://?fps=15&width=96&height=64&objects=1",
        "testsrc://?fps=15&width=96&height=64&objects=1&seed=2"]


@pytest.fixture
def view(request, detector):
    timeout = getattr(request, "param", 1)
    sink = HttpViewSink(f"http://127.0.0.1:0?timeout={timeout}&max_connections=8&max_viewers=2")
    pipeline = Pipeline(detector, CAMS, [sink])
    pipeline.start()
    yield sink
    pipeline.stop()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _http_threads() -> int:
    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


def _stream(port: int, camera: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET /stream/{camera}.mjpg HTTP/1.0\r\n\r\n".encode())
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closed the connection (EOF or reset) before ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(1024):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def _head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_unknown_camera_is_404_at_once_and_leaves_no_thread(view) -> None:
    base = f"http://127.0.0.1:{view.port}"
    before = _http_threads()
    t0 = time.monotonic()
    assert all(_status(f"{base}/stream/x{i}.mjpg") == 404 for i in range(50))
    assert time.monotonic() - t0 < 10
    assert wait_for(lambda: _http_threads() <= before, timeout=5)
    assert view.viewers() == {}


def test_silent_and_slow_drip_connections_are_closed_after_the_timeout(view) -> None:
    silent = [socket.create_connection(("127.0.0.1", view.port)) for _ in range(5)]
    drip = socket.create_connection(("127.0.0.1", view.port))
    t0 = time.monotonic()
    for i in range(12):  # one byte each 0.2 s: every read is quick, the request never ends
        try:
            drip.sendall(b"GET /"[i % 5:i % 5 + 1])
        except OSError:
            break
        time.sleep(0.2)
    assert all(_closed_by_server(sock, within=5) for sock in [*silent, drip])
    assert time.monotonic() - t0 < 6
    assert wait_for(lambda: _http_threads() == 0, timeout=5)
    for sock in [*silent, drip]:
        sock.close()


@pytest.mark.parametrize("view", [30], indirect=True)  # held connections must not time out
def test_connections_beyond_the_bound_get_503_without_a_thread(view) -> None:
    held = [socket.create_connection(("127.0.0.1", view.port)) for _ in range(8)]
    assert wait_for(lambda: _http_threads() == 8, timeout=5)
    extra = socket.create_connection(("127.0.0.1", view.port), timeout=5)
    assert extra.recv(1024).startswith(b"HTTP/1.0 503")
    assert _http_threads() == 8
    for sock in [extra, *held]:
        sock.close()
    assert wait_for(lambda: _status(f"http://127.0.0.1:{view.port}/stats.json") == 200)
    assert view._server.request_queue_size == 128  # the listen backlog, not socketserver's 5


def test_viewers_are_counted_and_bounded_per_camera_and_only_watched_cameras_encode(
        view) -> None:
    first, second = _stream(view.port, "cam0"), _stream(view.port, "cam0")
    assert b" 200 " in _head(first) and b" 200 " in _head(second)
    third = _stream(view.port, "cam0")
    assert b" 503 " in _head(third)
    assert view.viewers() == {"cam0": 2}
    assert wait_for(lambda: "cam0" in view._jpeg)
    time.sleep(0.5)
    assert "cam1" not in view._jpeg  # nobody watches cam1: its frames are never encoded
    for sock in (first, second, third):
        sock.close()
    # A viewer that left is noticed even while no frame is sent (within a second).
    assert wait_for(lambda: view.viewers() == {}, timeout=10)


def test_the_token_is_written_to_a_private_file_at_start(tmp_path: Path) -> None:
    token_file = tmp_path / "view.token"
    token_file.write_text("old")
    token_file.chmod(0o644)
    sink = HttpViewSink(f"http://0.0.0.0:0?token_file={token_file}")
    sink.open()
    try:
        assert token_file.read_text().strip() == sink.token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert sink.token not in sink.announcement() and str(token_file) in sink.announcement()
    finally:
        sink.close()


def test_bad_limits_in_the_uri_are_refused() -> None:
    with pytest.raises(EdgekitError, match="max_viewers='zero' must be a positive number"):
        HttpViewSink("http://127.0.0.1:0?max_viewers=zero")

"""A live view over HTTP: an HTML page, MJPEG streams per camera, /stats.json and /metrics.

``http://127.0.0.1:8080`` (the default host is loopback: only this machine can look). Bound to
any other address the view needs a token (``http://0.0.0.0:8080?token=SECRET``); without one a
random token is made and printed when the view starts (``?token_file=PATH`` writes it to a
file with 0600 permissions instead). Port 0 picks a free port.

Hostile or careless clients cannot exhaust it: a connection that sends no complete request
within ``timeout`` seconds (default 10) is closed, a viewer that stops reading is dropped after
the same time, at most ``max_connections`` (default 64) are served at once (more get 503 at
once, without a thread), at most ``max_viewers`` (default 8) per camera, and an unknown camera
gets 404 at once. JPEG encoding runs only for cameras someone watches.

Why the standard library and not aiohttp: with the bounds above a thread per connection is
bounded (64 threads at most) and returns to the baseline within the timeout, which is what
``benchmarks/http_view_hardening.py`` measures; aiohttp would add seven packages to a Pi's
install for the same guarantees.
"""

from __future__ import annotations

import html
import io
import ipaddress
import json
import os
import secrets
import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..errors import EdgekitError
from .base import Result, Sink

_BOUNDARY = "edgekitframe"
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgekit live</title>
<style>
body{font:14px system-ui,sans-serif;margin:1em;background:#111;color:#eee}
figure{display:inline-block;margin:0 1em 1em 0}img{max-width:48vw;background:#222}
pre{background:#222;padding:.5em}
</style></head>
<body><h1>edgekit live</h1><div id="cams"></div><pre id="stats">waiting for frames</pre>
<script>
const token = __TOKEN__;
const q = token ? "?token=" + encodeURIComponent(token) : "";
const cams = document.getElementById("cams");
function p(w, k) { return w && w[k] !== undefined ? w[k].toFixed(1) : "-"; }
async function tick() {
  let s;
  try { s = await (await fetch("stats.json" + q)).json(); } catch (e) { return; }
  for (const [name, c] of Object.entries(s.cameras)) {
    let fig = document.getElementById("cam-" + name);
    if (!fig) {
      fig = document.createElement("figure"); fig.id = "cam-" + name;
      const img = document.createElement("img"); img.alt = name;
      img.onload = () => { img.dataset.width = img.naturalWidth; };
      img.src = "stream/" + encodeURIComponent(name) + ".mjpg" + q;
      fig.append(img, document.createElement("figcaption")); cams.append(fig);
    }
    fig.querySelector("figcaption").textContent = name + " " + c.status + " | " + c.fps_out
      + " fps | frame age p50 " + p(c.frame_age_ms, "p50") + " ms | dropped " + c.dropped
      + " | reconnects " + c.reconnects;
  }
  document.body.dataset.framesOut = s.frames_out;
  document.getElementById("stats").textContent = "frames in " + s.frames_in + ", out "
    + s.frames_out + ", " + s.fps_out + " fps, end-to-end p50 " + p(s.end_to_end_ms, "p50")
    + " ms\\nevents " + JSON.stringify(s.events);
}
tick(); setInterval(tick, 1000);
</script></body></html>
"""


def needs_token(host: str) -> bool:
    """Whether a view bound to ``host`` is reachable from other machines (and needs a token)."""
    if host in ("localhost", ""):
        return host == ""  # "" binds every interface
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: it may resolve to anything


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing per request and answers with one call.

    Shared by the live view and the device service's status endpoint: the terminal (or the
    journal) shows their status lines, not one access-log line per request.
    """

    def log_message(self, *args: Any) -> None:
        return

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewLimits:
    """Bounds that keep the view alive under many, slow or silent clients.

    Attributes:
        timeout_s: Longest time to receive a whole request head, and longest a blocked write
            to a viewer may wait (a viewer that stops reading is dropped).
        max_connections: Connections served at once; more are answered 503 without a thread.
        max_viewers: Streams per camera at once; more are answered 503.
        backlog: The listen backlog (the kernel's queue of connections not yet accepted).
    """

    timeout_s: float = 10.0
    max_connections: int = 64
    max_viewers: int = 8
    backlog: int = 128

    @classmethod
    def from_query(cls, uri: str, query: dict[str, list[str]]) -> ViewLimits:
        """Reads ``timeout``, ``max_connections``, ``max_viewers``, ``backlog`` from a URI."""
        values: dict[str, Any] = {}
        for key, field_, kind in (("timeout", "timeout_s", float),
                                  ("max_connections", "max_connections", int),
                                  ("max_viewers", "max_viewers", int),
                                  ("backlog", "backlog", int)):
            if key in query:
                try:
                    values[field_] = kind(query[key][-1])
                except ValueError:
                    values[field_] = -1
                if not values[field_] > 0:
                    raise EdgekitError(f"{uri}: {key}={query[key][-1]!r} must be a positive "
                                       "number.", hint=f"e.g. ?{key}=10")
        return cls(**values)


_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
         b"too many connections\n")


class _Server(ThreadingHTTPServer):
    """A threading server with a real backlog and a bounded number of handler threads."""

    daemon_threads = True  # a client that never reads cannot keep the process alive
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, limits: ViewLimits) -> None:
        self.request_queue_size = limits.backlog  # socketserver's default is 5
        self.slots = threading.BoundedSemaphore(limits.max_connections)
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            # Refused in the accepting thread: a flood costs no thread and no memory.
            try:
                request.setblocking(False)
                request.send(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _DeadlineIO(socket.SocketIO):
    """The request reader's raw socket: every receive shares one deadline for the whole head.

    A plain socket timeout restarts with each receive, so a client sending one byte every few
    seconds would hold its thread for ever (the request line may be 64 kB long).
    """

    def __init__(self, sock: socket.socket, timeout_s: float) -> None:
        super().__init__(sock, "rb")
        self.deadline = time.monotonic() + timeout_s

    def readinto(self, buffer: Any) -> int | None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request head not complete in time")
        self._sock.settimeout(left)
        return super().readinto(buffer)


class HttpViewSink(Sink):
    """The live view; ``describe()`` gives the URL to open (with the token if there is one)."""

    lossless = False  # a view shows the newest frame; it never slows the pipeline down

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        if parts.scheme != "http":
            raise EdgekitError(f"{uri}: the live view serves plain http:// only.",
                               hint="Put a TLS proxy in front of it for https.")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port if parts.port is not None else 8080
        query = parse_qs(parts.query)
        token = query.get("token", [""])[-1]
        self.token = token or (secrets.token_urlsafe(12) if needs_token(self.host) else "")
        self.token_file = Path(query["token_file"][-1]) if query.get("token_file") else None
        self.limits = ViewLimits.from_query(uri, query)
        self._cond = threading.Condition()
        self._jpeg: dict[str, tuple[int, bytes]] = {}
        self._viewers: dict[str, int] = {}
        self._closed = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        suffix = f"/?token={quote(self.token)}" if self.token else "/"
        return f"http://{host}:{self.port}{suffix}"

    @property
    def listening(self) -> bool:
        """Whether the view is up (its port is known)."""
        return self._server is not None

    def announcement(self) -> str:
        """What to print at start: the URL to open, or where its token is."""
        if self.token and self.token_file is not None:
            return (f"{self.url.split('?', 1)[0]} (token in {self.token_file}: add "
                    "?token=... or send 'Authorization: Bearer ...')")
        return self.url

    def viewers(self) -> dict[str, int]:
        """Streams open now, per camera."""
        with self._cond:
            return {cam: n for cam, n in self._viewers.items() if n}

    def open(self) -> None:
        if self.token and self.token_file is not None:
            self._write_token_file()
        try:
            self._server = _Server((self.host, self.port), self._handler(), self.limits)
        except OSError as exc:
            raise EdgekitError(f"{self.uri}: cannot listen on {self.host}:{self.port}: "
                               f"{exc.strerror or exc}.",
                               hint="Pick another port (or :0 for any free one).") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"http view {self.port}")
        self._thread.start()

    def _write_token_file(self) -> None:
        assert self.token_file is not None
        try:  # created 0600 from the start: the token is never readable by others
            fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
            with os.fdopen(fd, "w") as handle:
                handle.write(self.token + "\n")
        except OSError as exc:
            raise EdgekitError(f"{self.uri}: cannot write the token to {self.token_file}: "
                               f"{exc.strerror or exc}.",
                               hint="Pick a token_file path you may write to.") from None

    def write(self, result: Result) -> None:
        import cv2

        with self._cond:
            watching = self._viewers.get(result.camera, 0) > 0
        # Encoding costs a few ms per frame: only for cameras someone watches.
        if not watching:
            return
        ok, data = cv2.imencode(".jpg", result.annotated(), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            with self._cond:
                seq = self._jpeg.get(result.camera, (0, b""))[0] + 1
                self._jpeg[result.camera] = (seq, data.tobytes())
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def describe(self) -> str:
        return self.url

    # ---- request handling ----------------------------------------------------------------

    def _stats(self) -> dict[str, Any]:
        return self.stats_provider() if self.stats_provider else {"cameras": {}}

    def _known(self, camera: str) -> bool:
        with self._cond:
            return camera in self.cameras or camera in self._jpeg

    def _join(self, camera: str) -> bool:
        """Counts a new viewer of a camera; False when it has its maximum already."""
        with self._cond:
            if self._viewers.get(camera, 0) >= self.limits.max_viewers:
                return False
            self._viewers[camera] = self._viewers.get(camera, 0) + 1
            return True

    def _leave(self, camera: str) -> None:
        with self._cond:
            self._viewers[camera] -= 1

    def _next_frame(self, camera: str, last: int, wait_s: float) -> tuple[int, bytes] | None:
        """The camera's newest JPEG once it is newer than ``last``; None after ``wait_s``."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed or self._jpeg.get(camera, (0, b""))[0] != last, wait_s)
            if self._closed or self._jpeg.get(camera, (0, b""))[0] == last:
                return None
            return self._jpeg[camera]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        view = self

        class Handler(QuietHandler):
            timeout = view.limits.timeout_s  # socket timeout for every read and write

            def setup(self) -> None:
                super().setup()
                self.rfile = io.BufferedReader(_DeadlineIO(self.connection, self.timeout))

            def _authorized(self, query: dict[str, list[str]]) -> bool:
                if not view.token:
                    return True
                given = query.get("token", [""])[-1]
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                return any(secrets.compare_digest(x, view.token) for x in (given, bearer) if x)

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                self.connection.settimeout(view.limits.timeout_s)  # writes: the full timeout
                parts = urlsplit(self.path)
                if not self._authorized(parse_qs(parts.query)):
                    self._send(401, b"token required: add ?token=...\n", "text/plain")
                    return
                path = parts.path
                if path in ("/", "/index.html"):
                    page = _PAGE.replace("__TOKEN__", json.dumps(html.escape(view.token)))
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif path == "/stats.json":
                    body = json.dumps(view._stats(), default=str).encode()
                    self._send(200, body, "application/json")
                elif path == "/metrics":
                    from ..pipeline.metrics import prometheus

                    stats = view._stats()
                    body = prometheus(stats).encode() if "stages_ms" in stats else b""
                    self._send(200, body, "text/plain; version=0.0.4")
                elif path.startswith("/stream/") and path.endswith(".mjpg"):
                    self._stream(unquote(path[len("/stream/"):-len(".mjpg")]))
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _stream(self, camera: str) -> None:
                if not view._known(camera):
                    self._send(404, b"no such camera\n", "text/plain")
                    return
                if not view._join(camera):
                    self._send(503, b"too many viewers of this camera\n", "text/plain")
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type",
                                     f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.flush()
                    self._send_frames(camera)
                except OSError:
                    pass  # the viewer went away, or stopped reading for longer than timeout
                finally:
                    view._leave(camera)

            def _send_frames(self, camera: str) -> None:
                last = 0
                while True:
                    frame = view._next_frame(camera, last, 1.0)
                    if frame is None:
                        if view._closed or self._client_left():
                            return
                        continue
                    last, data = frame
                    self.wfile.write(
                        f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

            def _client_left(self) -> bool:
                """Whether the viewer closed its end (seen while no frame came to send)."""
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

        return Handler

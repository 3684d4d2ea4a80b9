"""A live view over HTTP: an HTML page, MJPEG streams per camera, /stats.json and /metrics.

``http://127.0.0.1:8080`` (the default host is loopback: only this machine can look). Bound to
any other address the view needs a token (``http://0.0.0.0:8080?token=SECRET``); without one a
random token is made and shown in the run's summary. Port 0 picks a free port.
"""

from __future__ import annotations

import html
import ipaddress
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

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


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a client that never reads cannot keep the process alive
    allow_reuse_address = True


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
        token = parse_qs(parts.query).get("token", [""])[-1]
        self.token = token or (secrets.token_urlsafe(12) if needs_token(self.host) else "")
        self._cond = threading.Condition()
        self._jpeg: dict[str, tuple[int, bytes]] = {}
        self._viewers = 0
        self._closed = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        suffix = f"/?token={quote(self.token)}" if self.token else "/"
        return f"http://{host}:{self.port}{suffix}"

    def open(self) -> None:
        try:
            self._server = _Server((self.host, self.port), self._handler())
        except OSError as exc:
            raise EdgekitError(f"{self.uri}: cannot listen on {self.host}:{self.port}: "
                               f"{exc.strerror or exc}.",
                               hint="Pick another port (or :0 for any free one).") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"http view {self.port}")
        self._thread.start()

    def write(self, result: Result) -> None:
        import cv2

        with self._cond:
            watching = self._viewers > 0
        # Encoding costs a few ms per frame: only when someone watches.
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

    def _frames(self, camera: str):
        """Yields each new JPEG of a camera until the view closes."""
        last = 0
        while True:
            with self._cond:
                while not self._closed and self._jpeg.get(camera, (0, b""))[0] == last:
                    self._cond.wait(1.0)
                if self._closed:
                    return
                last, data = self._jpeg[camera]
            yield data

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        view = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet: the terminal shows the status
                return

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self, query: dict[str, list[str]]) -> bool:
                if not view.token:
                    return True
                given = query.get("token", [""])[-1]
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                return any(secrets.compare_digest(x, view.token) for x in (given, bearer) if x)

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
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
                    self._stream(path[len("/stream/"):-len(".mjpg")])
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _stream(self, camera: str) -> None:
                from urllib.parse import unquote

                self.send_response(200)
                self.send_header("Content-Type",
                                 f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                with view._cond:
                    view._viewers += 1
                try:
                    for data in view._frames(unquote(camera)):
                        self.wfile.write(
                            f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the viewer went away
                finally:
                    with view._cond:
                        view._viewers -= 1

        return Handler

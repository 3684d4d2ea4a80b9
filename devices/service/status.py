"""The service's status endpoint: ``GET /status`` (JSON) and ``GET /metrics`` (Prometheus).

Loopback by default (``127.0.0.1:8787``); bound to any other address it needs a token
(``Authorization: Bearer TOKEN`` or ``?token=TOKEN``), and refuses to start without one.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edgekit.errors import EdgekitError
from edgekit.sinks.http import QuietHandler, needs_token


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8787`` for IPv6) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise EdgekitError(f"status listen address '{listen}' is not HOST:PORT.",
                           hint="e.g. 127.0.0.1:8787 (port 0 picks a free one).")
    return host.strip("[]") or "127.0.0.1", int(port)


class StatusServer:
    """Serves the service's summary; ``provider()`` returns it (called per request)."""

    def __init__(self, listen: str, token: str | None,
                 provider: Callable[[], dict[str, Any]]) -> None:
        self.host, self.port = parse_listen(listen)
        if needs_token(self.host) and not token:
            raise EdgekitError(f"the status endpoint on {listen} is reachable from other "
                               "machines and has no token.",
                               hint="Set status.token in the config (or --token), or listen "
                                    "on 127.0.0.1.")
        self.token = token or ""
        self.provider = provider
        self._server: _Server | None = None

    def start(self) -> None:
        try:
            self._server = _Server((self.host, self.port), self._handler())
        except OSError as exc:
            raise EdgekitError(f"cannot listen on {self.host}:{self.port} for the status "
                               f"endpoint: {exc.strerror or exc}.",
                               hint="Pick another port in status.listen.") from None
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="status endpoint",
                         daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/status"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                parts = urlsplit(self.path)
                if server.token:
                    given = parse_qs(parts.query).get("token", [""])[-1] or self.headers.get(
                        "Authorization", "").removeprefix("Bearer ").strip()
                    if not given or not secrets.compare_digest(given, server.token):
                        self._send(401, b"token required\n", "text/plain")
                        return
                if parts.path in ("/", "/status"):
                    body = json.dumps(server.provider(), default=str).encode()
                    self._send(200, body, "application/json")
                elif parts.path == "/metrics":
                    from edgekit.pipeline.metrics import prometheus

                    summary = server.provider()
                    body = prometheus(summary).encode() if "stages_ms" in summary else b""
                    self._send(200, body, "text/plain; version=0.0.4")
                else:
                    self._send(404, b"not found\n", "text/plain")

        return Handler

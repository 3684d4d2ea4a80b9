"""Helpers of the pipeline tests: a restartable server process, free ports, polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil


def _root_conftest():
    # tests/conftest.py holds make_yolo_onnx; load it by path, as two modules named "conftest"
    # (this folder's and the root's) cannot both be imported by name.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "edgekit_root_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_yolo_onnx = _root_conftest().make_yolo_onnx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process that a test may kill, restart, freeze (SIGSTOP) and thaw."""

    def __init__(self, argv: list[str], port: int) -> None:
        self.argv, self.port = argv, port
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> Server:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # listening? (asking would use ffmpeg's one client)
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}")
            # An ESTABLISHED one counts too: a client that reconnects in a loop can be accepted
            # between two polls, and ffmpeg's -listen 1 then closes its listening socket.
            up = (psutil.CONN_LISTEN, psutil.CONN_ESTABLISHED)
            conns = psutil.Process(self.proc.pid).net_connections(kind="tcp")
            if any(c.status in up and c.laddr.port == self.port for c in conns):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.argv} did not listen on {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


def write_video(path: Path, frames: int, size: tuple[int, int] = (64, 48)) -> Path:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), i * 20 % 256, np.uint8))
    writer.release()
    return path


def wait_for(predicate, timeout: float = 20.0, step: float = 0.05) -> bool:
    """Polls until predicate() is true; the timeout only bounds a failing test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()

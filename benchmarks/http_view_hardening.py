"""The live view under hostile clients, measured on a real `edgekit run` process.

Prints the run's threads and RSS (read with psutil from outside the process):
- at baseline (4 cameras running, view open, nobody connected);
- after 1,000 requests for unknown cameras (each must be a 404 at once);
- while 500 silent connections are open, and again after the view's timeout (back to
  baseline: silent sockets are closed, connections beyond the bound got 503 without a thread);
then the 4-camera frame age (p50/p99 at inference) without viewers and with one viewer
on each camera.

    python benchmarks/http_view_hardening.py [--model sample] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

CAMERA = "testsrc://?fps=15&width=640&height=480&objects=4&seed={seed}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_run(model: str, port: int, seconds: float, out: Path) -> subprocess.Popen:
    sources = [arg for i in range(4) for arg in ("--source", CAMERA.format(seed=i))]
    return subprocess.Popen(
        [sys.executable, "-m", "edgekit", "run", model, *sources, "--sink",
         f"http://127.0.0.1:{port}", "--duration", str(seconds), "--quiet", "--json", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_up(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if get(f"http://127.0.0.1:{port}/stats.json") == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the run did not start its view")


def sample(proc: psutil.Process) -> str:
    return f"threads {proc.num_threads():3d}  RSS {proc.memory_info().rss / 2**20:6.1f} MB"


def viewer(port: int, camera: str, stop: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /stream/{camera}.mjpg HTTP/1.0\r\n\r\n".encode())
        while not stop.is_set() and sock.recv(65536):
            pass


def hostile(model: str, timeout_s: float) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_run(model, port, 600, Path(tmp) / "s.json")
        try:
            wait_up(port, proc)
            ps = psutil.Process(proc.pid)
            time.sleep(3)
            print(f"baseline:                          {sample(ps)}")
            for round_ in ("1,000", "2,000"):  # a second round tells warm-up from a leak
                t0 = time.monotonic()
                codes = [get(f"http://127.0.0.1:{port}/stream/x{i}.mjpg") for i in range(1000)]
                took = time.monotonic() - t0
                print(f"after {round_} unknown-camera GETs:   {sample(ps)}  "
                      f"({codes.count(404)} x 404, {took / 1000 * 1e3:.1f} ms each)")
            socks = [socket.create_connection(("127.0.0.1", port), timeout=30)
                     for _ in range(500)]
            time.sleep(1)
            busy = 0
            for sock in socks:
                sock.setblocking(False)
                try:
                    busy += sock.recv(64).startswith(b"HTTP/1.0 503")
                except BlockingIOError:
                    pass
            print(f"500 silent connections open:       {sample(ps)}  ({busy} answered 503)")
            time.sleep(timeout_s + 2)
            print(f"{timeout_s + 2:.0f} s later (timeout {timeout_s:.0f} s):      {sample(ps)}  "
                  f"(stats.json answers {get(f'http://127.0.0.1:{port}/stats.json')})")
            for sock in socks:
                sock.close()
        finally:
            proc.terminate()
            proc.wait(30)


def frame_age(model: str, seconds: float, viewers: bool) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.json"
        proc = start_run(model, port, seconds, out)
        stop = threading.Event()
        wait_up(port, proc)
        threads = [threading.Thread(target=viewer, args=(port, f"cam{i}", stop), daemon=True)
                   for i in range(4 if viewers else 0)]
        for thread in threads:
            thread.start()
        proc.wait(seconds + 120)
        stop.set()
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sample")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=10, help="the view's default timeout")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    print(f"load average {' '.join(f'{x:.1f}' for x in psutil.getloadavg())} on "
          f"{psutil.cpu_count()} CPUs")
    hostile(args.model, args.timeout)
    for watched in (False, True):
        s = frame_age(args.model, args.seconds, watched)
        age = s["frame_age_ms"]
        sink = next((v for k, v in s["stages_ms"].items() if k.startswith("sink:")), {})
        cams = "  ".join(f"{n} {c['fps_out']:.1f} fps" for n, c in s["cameras"].items())
        print(f"4 cameras, {'4 viewers' if watched else 'no viewer'}: frame age p50 "
              f"{age.get('p50', 0):.0f} ms, p99 {age.get('p99', 0):.0f} ms; view sink stage "
              f"p50 {sink.get('p50', 0):.2f} ms; {cams}")


if __name__ == "__main__":
    main()

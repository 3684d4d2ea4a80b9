"""A real two-node Ray cluster on 127.0.0.1, started and stopped by PID (`ray start --block`).

Each node is one `ray start --block` process in its own session; stopping a node kills that
process group (its raylet, GCS, agents and workers), and nothing else. Resources are small:
one logical CPU per node and a 100 MB object store.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE = str(100 * 1024 * 1024)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(temp: Path) -> dict[str, str]:
    """The environment of every process of the cluster and of its drivers.

    Ray 2.60 authenticates with a token; this cluster uses its own token file (not the
    user's ~/.ray/auth_token), and every node and driver must name the same one.
    """
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(temp / "token")}


@dataclass
class Node:
    process: subprocess.Popen
    log: Path

    def pids(self) -> set[int]:
        try:
            return {p.pid for p in psutil.Process(self.process.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def raylet(self) -> psutil.Process:
        for child in psutil.Process(self.process.pid).children(recursive=True):
            if child.name() == "raylet":
                return child
        raise AssertionError(f"no raylet under {self.process.pid}: {self.log.read_text()}")

    def stop(self) -> None:
        members = self.pids() | {self.process.pid}
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        # Ray drains for up to 30 s on SIGTERM; a test cluster has nothing worth draining.
        _, alive = psutil.wait_procs([_proc(p) for p in members if _proc(p)], timeout=3)
        for proc in alive:
            proc.kill()
        self.process.wait(timeout=10)


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


@dataclass
class Cluster:
    address: str
    client_address: str
    head: Node
    worker: Node
    temp: Path

    @property
    def env(self) -> dict[str, str]:
        return env(self.temp)

    def stop(self) -> None:
        for node in (self.worker, self.head):
            node.stop()
        shutil.rmtree(self.temp, ignore_errors=True)


def _start(args: list[str], log: Path, temp: Path, timeout: float = 120.0) -> Node:
    handle = log.open("w")
    process = subprocess.Popen([RAY, "start", "--block", *args], stdout=handle,
                               stderr=subprocess.STDOUT, env=env(temp), start_new_session=True)
    node = Node(process, log)
    deadline = time.monotonic() + timeout
    while "Ray runtime started" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            node.stop()
            raise AssertionError(f"ray start failed: {log.read_text()}")
        time.sleep(0.3)
    return node


def _retry(args: Callable[[], list[str]], log: Path, temp: Path, attempts: int = 3) -> Node:
    for attempt in range(attempts):
        try:
            return _start(args(), log.with_name(f"{log.name}-{attempt}.log"), temp)
        except AssertionError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _ports() -> list[str]:
    # Two nodes on one machine: every port a node would take by default must differ.
    return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}", f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}"]


def start_cluster(logs: Path) -> Cluster:
    # A short socket path: Unix sockets live under the temp dir and allow 107 characters.
    temp = Path(tempfile.mkdtemp(prefix="rk", dir="/tmp"))
    (temp / "token").write_text(uuid.uuid4().hex)
    port, client_port = free_port(), free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1",
              f"--object-store-memory={OBJECT_STORE}"]
    # Node death is noticed after a few missed health checks (default: 5 x 3 s).
    # Only actors run on this cluster: no idle task workers prestarted per CPU.
    system = ('{"health_check_period_ms": 1000, "health_check_failure_threshold": 3,'
              ' "health_check_timeout_ms": 2000, "prestart_worker_first_driver": false,'
              ' "enable_worker_prestart": false}')
    # `ray start` gives a node 30 s (hard-coded) to bring up its raylet and agents and
    # register; a loaded machine can miss that, so each node gets 3 attempts.
    try:
        head = _retry(lambda: ["--head", f"--port={port}", "--include-dashboard=false",
                               f"--ray-client-server-port={client_port}", f"--temp-dir={temp}",
                               f"--system-config={system}", *common, *_ports()],
                      logs / "head", temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    try:
        worker = _retry(lambda: [f"--address=127.0.0.1:{port}", *common, *_ports()],
                        logs / "worker", temp)
    except BaseException:
        head.stop()
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return Cluster(f"127.0.0.1:{port}", f"ray://127.0.0.1:{client_port}", head, worker, temp)

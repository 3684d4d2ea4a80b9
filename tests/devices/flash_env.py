"""Test helpers for flashing: real OpenSSH servers on 127.0.0.1 and small real bundles.

Each server is Debian's /usr/sbin/sshd with its own config, host key and authorized key in a
temporary directory, stopped by its PID. The "device's Python" is this interpreter, so the
device side imports the edgekit under test.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

SSHD = "/usr/sbin/sshd"
PYTHON = sys.executable

needs_sshd = pytest.mark.skipif(not Path(SSHD).exists() or shutil.which("ssh-keygen") is None,
                                reason="needs sshd and ssh-keygen (Debian openssh-server): "
                                "run `make system-deps` as root, or "
                                "`sudo apt-get install openssh-server openssh-client`")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path


class Sshd:
    """One private sshd on 127.0.0.1 (a 'device')."""

    def __init__(self, directory: Path, client_key: Path, *, port: int | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()  # a given port: a device that comes online later
        self.host_key = keygen(self.dir / "host_key")
        shutil.copyfile(f"{client_key}.pub", self.dir / "authorized_keys")
        self.config = self.dir / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            f"PidFile {self.dir / 'sshd.pid'}", "UsePAM no", "StrictModes no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp",
            "MaxStartups 100:30:200", "MaxSessions 50", "LogLevel ERROR", ""]))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-f", str(self.config),
                                      "-E", str(self.dir / "sshd.log")])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.dir / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("sshd did not start listening within 15 s")

    def known_hosts_line(self) -> str:
        key = Path(f"{self.host_key}.pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {key[0]} {key[1]}\n"

    def uri(self, root: Path | str) -> str:
        return f"ssh://{getpass.getuser()}@127.0.0.1:{self.port}{root}"

    def kill_sessions(self) -> int:
        """Kills the sshd children serving connections: a connection dropped mid-transfer."""
        import psutil

        children = psutil.Process(self.proc.pid).children(recursive=True)
        for child in children:
            child.kill()
        return len(children)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Lab:
    """Client key, known_hosts and servers for one test module."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.client_key = keygen(directory / "client_key")
        self.known_hosts = directory / "known_hosts"
        self.known_hosts.write_text("")
        self.servers: list[Sshd] = []

    def server(self, *, port: int | None = None) -> Sshd:
        server = Sshd(self.dir / f"sshd{len(self.servers)}", self.client_key, port=port)
        self.servers.append(server)
        with open(self.known_hosts, "a") as handle:
            handle.write(server.known_hosts_line())
        return server

    def target(self, server: Sshd, root: Path | str, **settings: object):
        from edgekit.devices.flash import parse_target

        return parse_target(server.uri(root), **{
            "identity": str(self.client_key), "known_hosts": str(self.known_hosts),
            "python": PYTHON, **settings})

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def make_bundle(dest: Path, *, name: str = "tiny", score: float = 0.9, golden: bool = True,
                golden_offset: float = 0.0, pad_bytes: int = 0) -> Path:
    """A real bundle: the tiny ONNX detector of tests/conftest.py, its golden inputs/outputs
    computed with onnxruntime (export/parity.py's format), optionally padded to a size."""
    import onnx
    import onnxruntime as ort
    from helpers import make_yolo_onnx
    from onnx import numpy_helper

    from edgekit.bundle import (
        BundleWriter,
        Format,
        InputSpec,
        Manifest,
        Precision,
        Provenance,
        sha256_file,
    )
    from edgekit.preprocess import preprocess

    work = dest.parent / f".{dest.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    model_path = make_yolo_onnx(work / "model.onnx", boxes=[(10, 12, 8, 6, 1, score)])
    if pad_bytes:  # an unused initializer: a bigger file, the same computation
        model = onnx.load(model_path)
        pad = np.random.default_rng(0).random(pad_bytes // 4, dtype=np.float32)
        model.graph.initializer.append(numpy_helper.from_array(pad, "pad"))
        onnx.save(model, model_path)
    spec = InputSpec(shape=(1, 3, 32, 32))
    rng = np.random.default_rng(1)
    inputs = np.stack([preprocess(rng.integers(0, 255, (48, 64, 3), np.uint8), spec)[0]
                       for _ in range(2)])
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    outputs = np.stack([session.run(None, {"images": x})[0] for x in inputs]) + golden_offset
    parity = {}
    if golden:
        np.savez_compressed(work / "golden.npz", inputs=inputs.astype(np.float32),
                            outputs=outputs.astype(np.float32))
        parity = {"golden": "golden.npz", "golden_sha256": sha256_file(work / "golden.npz"),
                  "max_abs_diff": 0.0}
    manifest = Manifest(name=name, labels=["a", "b", "c"], input=spec)
    with BundleWriter(dest, manifest) as writer:
        writer.add_file(model_path, format=Format.ONNX, precision=Precision.FP32)
        if golden:
            shutil.copyfile(work / "golden.npz", writer.staging / "golden.npz")
        writer.update(provenance=replace(Provenance(), source="tests", parity=parity))
    shutil.rmtree(work)
    return dest


def mount_tmpfs(path: Path, size: str) -> bool:
    """Mounts a tiny tmpfs (a small disk) where permitted; False when not (not root)."""
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)

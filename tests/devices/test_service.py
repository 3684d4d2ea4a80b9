"""`edgekit serve` on a real install root flashed over a real sshd, with a live testsrc camera.

The service process follows the flash: a second bundle is swapped in between two frames, a
bundle whose scores are all under the threshold passes the agent's golden check but collapses
on live frames and is rolled back by the service itself, and a bundle that does not load leaves
the running model in place. The JSONL sink proves no frame was lost through any of it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from flash_env import PYTHON, Lab, make_bundle, needs_sshd

from edgekit.cli import main

pytestmark = needs_sshd


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("svc"))
    lab.server()
    yield lab
    lab.stop()


def _flash(lab: Lab, bundle: Path, uri: str, out: Path, *extra: str) -> tuple[int, dict]:
    ssh = ["--identity", str(lab.client_key), "--known-hosts", str(lab.known_hosts),
           "--remote-python", PYTHON]
    try:
        main(["flash", str(bundle), uri, *ssh, "--json", str(out), *extra])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.read_text())["results"][0]


def _lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _read_notify(sock: socket.socket, messages: list[str], done: threading.Event) -> None:
    sock.settimeout(0.2)
    while not done.is_set():
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue


def _broken_bundle(dest: Path) -> Path:
    """A bundle whose model file is not ONNX at all (its sha256 is right: it installs)."""
    from edgekit.bundle import BundleWriter, Format, Manifest, Precision

    garbage = dest.parent / "garbage.onnx"
    garbage.write_bytes(b"this is not an onnx model" * 10)
    with BundleWriter(dest, Manifest(name="garbage", labels=["a", "b", "c"])) as writer:
        writer.add_file(garbage, format=Format.ONNX, precision=Precision.FP32)
    return dest


def test_serve_follows_flashes_swaps_and_rolls_back(lab, tmp_path):
    server = lab.servers[0]
    root = tmp_path / "device"
    uri = server.uri(root)
    first = make_bundle(tmp_path / "first", name="first", score=0.9)
    second = make_bundle(tmp_path / "second", name="second", score=0.8)
    dim = make_bundle(tmp_path / "dim", name="dim", score=0.1)  # under the 0.25 threshold
    code, result = _flash(lab, first, uri, tmp_path / "f1.json")
    assert code == 0 and "service" not in result["details"]  # no service there yet

    events = tmp_path / "events.jsonl"
    config = tmp_path / "camera.yaml"
    config.write_text(yaml.safe_dump({
        "sources": ["testsrc://?fps=8&width=96&height=64&objects=1"], "sinks": [str(events)],
        "probation": {"frames": 24, "seconds": 30, "min_frames": 5, "shadow_every": 1,
                      "min_compared": 6, "min_detections": 4},
        "status": {"listen": "127.0.0.1:0"}}))
    notify = tmp_path / "notify.sock"  # plays systemd's end of sd_notify
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    messages: list[str] = []
    done = threading.Event()
    reader = threading.Thread(target=_read_notify, args=(sock, messages, done), daemon=True)
    reader.start()
    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "serve", "--root", str(root),
                             "--config", str(config), "--poll", "0.1"], env=env,
                            stderr=open(tmp_path / "serve.log", "w"))
    try:
        _wait(lambda: len(_lines(events)) > 5, 60, "the service's first frames")
        code, result = _flash(lab, second, uri, tmp_path / "f2.json")
        assert code == 0, result["reason"]
        verdict = result["details"]["service"]
        assert verdict["verdict"] == "healthy" and verdict["figures"]["compared_frames"] >= 6
        assert verdict["swap"]["dropped"] == 0 and verdict["swap"]["first_frame_ms"] >= 0

        code, result = _flash(lab, dim, uri, tmp_path / "f3.json")
        assert code == 2 and result["status"] == "rolled-back"
        assert "detections collapsed" in result["reason"]
        assert result["active"].startswith("second-")

        broken = _broken_bundle(tmp_path / "garbage")
        code, result = _flash(lab, broken, uri, tmp_path / "f4.json", "--no-health")
        assert code == 2 and "could not load" in result["reason"]
        assert result["active"].startswith("second-")

        main(["status", uri, "--identity", str(lab.client_key), "--known-hosts",
              str(lab.known_hosts), "--remote-python", PYTHON, "--json",
              str(tmp_path / "status.json")])
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["active"].startswith("second-") and status["service"]["alive"]
        rolled = [h for h in status["history"] if h["action"] == "rolled-back"]
        assert [h["version"].split("-")[0] for h in rolled] == ["dim", "garbage"]
        assert all(h["by"] == "service" for h in rolled)

        url = json.loads((root / "service.json").read_text())["status_url"]
        live = json.loads(urllib.request.urlopen(url, timeout=5).read())
        assert live["service"]["version"].startswith("second-")
        assert live["service"]["rollbacks"] == 1 and live["frames_out"] > 0
        metrics = urllib.request.urlopen(url.replace("/status", "/metrics"), timeout=5).read()
        assert f'edgekit_model_info{{version="{live["service"]["version"]}"}} 1' in \
            metrics.decode()
        count = len(_lines(events))
        _wait(lambda: len(_lines(events)) > count + 3, 30, "frames after the rollback")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]

    lines = _lines(events)
    indices = [line["index"] for line in lines]
    assert indices == list(range(indices[0], indices[0] + len(indices))), "a frame was lost"
    runs = [lines[0]["model"]]
    for line in lines[1:]:
        if line["model"] != runs[-1]:
            runs.append(line["model"])
    assert [r.split("-")[0] for r in runs] == ["first", "second", "dim", "second"]
    assert all(len(line["detections"]) == (0 if line["model"].startswith("dim") else 1)
               for line in lines)
    done.set()
    reader.join(5)
    sock.close()
    assert any("READY=1" in m for m in messages) and any("WATCHDOG=1" in m for m in messages)
    assert any("STOPPING=1" in m for m in messages)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="needs systemd-analyze (Debian systemd): run `make system-deps`")
@pytest.mark.parametrize("user", [False, True])
def test_service_unit_verifies(tmp_path, user):
    config = tmp_path / "my cams" / "camera.yaml"
    config.parent.mkdir()
    config.write_text("sources: ['testsrc://']\nsinks: ['events.jsonl']\n")
    args = ["service", "install", "--root", str(tmp_path / "models"), "--config", str(config),
            "--unit-dir", str(tmp_path / "units"), "--name", "edgekit-cam"]
    main(args + (["--user"] if user else ["--run-as", "root"]))
    unit = tmp_path / "units" / "edgekit-cam.service"
    text = unit.read_text()
    for line in ("Type=notify", "Restart=on-failure", "WatchdogSec=30", "StandardOutput=journal",
                 f'"{config.parent}/camera.yaml"'):
        assert line in text
    env = {**os.environ}
    if user:  # a user manager needs a runtime directory, as a login session has
        runtime = tmp_path / "run"
        runtime.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    proc = subprocess.run(["systemd-analyze", *(["--user"] if user else []), "verify",
                           str(unit)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and unit.name not in proc.stderr, proc.stderr


def test_bad_service_config_is_clear(tmp_path, capsys):
    config = tmp_path / "camera.yaml"
    config.write_text("sources: ['testsrc://']\nprobation: {frams: 10}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--root", str(tmp_path), "--config", str(config), "--duration", "1"])
    assert exit_info.value.code == 2
    assert "unknown key(s) ['frams']" in capsys.readouterr().err

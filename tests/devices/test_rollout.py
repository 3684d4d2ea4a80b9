"""A rollout in waves over 100 real install roots behind a real sshd on 127.0.0.1.

One scenario, as an operator lives it: the host running the rollout is killed (SIGKILL) in the
middle of a wave; `--resume` continues and halts at wave 2, where one device's runtime is
broken (its health check fails and the agent rolls it back); once that device is fixed,
`--resume` finishes the fleet. Every device's own history proves no device was activated twice.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from flash_env import PYTHON, Lab, make_bundle, needs_sshd

from edgekit.cli import main

pytestmark = needs_sshd
FLEET = 100
BROKEN = 40  # in wave 2 (positions 10-49 with --canary 1 --waves 10%,50%,100%)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("rollout"))
    lab.server()
    yield lab
    lab.stop()


def _python(path: Path, *, broken: Path | None) -> str:
    """The device's interpreter; a broken one finds an onnxruntime that cannot import."""
    env = f"PYTHONPATH={broken} " if broken else ""
    path.write_text(f"#!/bin/sh\n{env}exec {PYTHON} \"$@\"\n")
    path.chmod(0o755)
    return str(path)


def _ok_count(state: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM devices WHERE status = 'ok'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _resume(state: Path, out: Path) -> tuple[int, dict]:
    try:
        main(["rollout", "--resume", "--state", str(state), "--json", str(out)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.read_text())


def test_rollout_waves_kill_resume_halt_fix(lab, tmp_path):
    server = lab.servers[0]
    bundle = make_bundle(tmp_path / "bundle", name="fleet")
    broken = tmp_path / "broken-site" / "onnxruntime"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('this device has a broken "
                                        "onnxruntime install')\n")
    wrapper = tmp_path / "python-broken"
    roots = [tmp_path / "fleet" / f"dev{i:03d}" for i in range(FLEET)]
    hosts = {f"cam-{i:03d}": {"target": server.uri(root)} for i, root in enumerate(roots)}
    hosts[f"cam-{BROKEN:03d}"]["python"] = _python(wrapper, broken=broken.parent)
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(yaml.safe_dump({"defaults": {
        "python": PYTHON, "identity": str(lab.client_key), "known_hosts": str(lab.known_hosts),
        "board": "cpu-x86_64", "connect_timeout": 10}, "hosts": hosts}))
    state = tmp_path / "rollout.sqlite"

    host = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "rollout", str(bundle), "--inventory", str(inventory),
         "--canary", "1", "--waves", "10%,50%,100%", "--halt-on", "1", "--parallel", "8",
         "--state", str(state)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while _ok_count(state) < 14 and time.monotonic() < deadline and host.poll() is None:
            time.sleep(0.1)
        assert host.poll() is None, "the rollout ended before it could be interrupted"
    finally:
        host.send_signal(signal.SIGKILL)  # the host dies mid-wave 2, flashes in flight
        host.wait()

    code, halted = _resume(state, tmp_path / "halted.json")
    assert code == 2 and halted["status"] == "halted" and halted["halted_wave"] == 2
    devices = {d["name"]: d for d in halted["devices"]}
    failed = devices[f"cam-{BROKEN:03d}"]
    assert failed["status"] == "rolled-back" and failed["verdict"] == "health failed"
    assert "health check failed" in failed["reason"] and "onnxruntime" in failed["reason"]
    assert all(devices[f"cam-{i:03d}"]["status"] == "ok" for i in range(10))
    assert all(devices[f"cam-{i:03d}"]["status"] == "pending" for i in range(50, FLEET))
    assert not (roots[60] / "current").exists()  # wave 3 never started

    _python(wrapper, broken=None)  # the operator repairs the device's runtime
    code, done = _resume(state, tmp_path / "done.json")
    assert code == 0 and done["status"] == "complete" and done["counts"] == {"ok": FLEET}
    version = done["version"]
    for root in roots:
        history = json.loads((root / "state.json").read_text())["history"]
        activations = [h for h in history if h["version"] == version and h["action"] == "activate"]
        assert len(activations) == 1, f"{root.name} was activated {len(activations)} times"
        assert (root / "current").resolve().name == version
    record = next(d for d in done["devices"] if d["name"] == "cam-000")
    assert record["before"] is None and record["after"] == version and record["seconds"] > 0

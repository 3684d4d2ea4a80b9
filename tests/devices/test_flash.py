"""Flashing one device over a real OpenSSH server: activation, history, and every fault.

In each fault the previously active version must still be active and pass its health check.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from edgekit.devices.flash import FlashSettings, flash, parse_target, rollback_async, status_async
from flash_env import PYTHON, Lab, make_bundle, mount_tmpfs, needs_sshd, umount

pytestmark = needs_sshd


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lab"))
    lab.server()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    base = tmp_path_factory.mktemp("bundles")
    return {"v1": make_bundle(base / "v1", name="v1", score=0.9),
            "v2": make_bundle(base / "my bundle $(touch PWNED)", name="v2", score=0.8),
            "v3": make_bundle(base / "v3", name="v3", score=0.7),
            "big": make_bundle(base / "big", name="big", pad_bytes=2_000_000),
            "bad": make_bundle(base / "bad", name="bad", golden_offset=1.0),
            "nogolden": make_bundle(base / "nogolden", name="nogolden", golden=False)}


def assert_active(lab: Lab, target, version: str) -> None:
    """The device runs ``version`` and it passes its health check right now."""
    status = asyncio.run(status_async(target, check=True))
    assert status.active == version, status
    assert status.status == "ok" and status.health["golden"]["ok"], status.reason


def test_flash_switches_current_and_keeps_history(lab, bundles, tmp_path):
    root = tmp_path / "dev root $(touch PWNED)"
    target = lab.target(lab.servers[0], root)
    settings = FlashSettings(keep=2)
    first = flash(bundles["v1"], target, settings=settings)
    assert first.ok, first.reason
    assert first.board == "cpu-x86_64" and first.artifact == "onnx/fp32"
    assert first.health["golden"]["images"] == 2 and first.health["golden"]["max_abs_diff"] == 0
    second = flash(bundles["v2"], target, settings=settings)
    assert second.ok and second.previous == first.version and second.active == second.version
    link = root / "current"
    assert link.is_symlink() and os.readlink(link) == f"versions/{second.version}"
    # Only the chosen artifact, the golden file and a manifest naming just that artifact.
    installed = root / "versions" / second.version
    assert sorted(p.name for p in installed.iterdir()) == [
        "edgekit.json", "edgekit.source.json", "golden.npz", "model.onnx"]
    assert not list(Path.home().glob("PWNED")) and not list(tmp_path.rglob("PWNED"))
    third = flash(bundles["v3"], target, settings=settings)
    assert third.ok
    assert sorted(p.name for p in (root / "versions").iterdir()) == sorted(
        [second.version, third.version])  # keep=2 pruned v1
    again = flash(bundles["v3"], target, settings=settings)
    assert again.ok and again.sent_bytes == 0  # already installed: nothing sent, re-checked
    back = asyncio.run(rollback_async(target))
    assert back.status == "ok" and back.active == second.version
    assert_active(lab, target, second.version)


def test_failing_health_check_rolls_back(lab, bundles, tmp_path):
    target = lab.target(lab.servers[0], tmp_path / "dev")
    good = flash(bundles["v1"], target)
    bad = flash(bundles["bad"], target)
    assert bad.status == "rolled-back"
    assert "health check failed: golden image 0 does not match" in bad.reason
    assert f"'{good.version}' is still active" in bad.reason
    assert bad.active == good.version
    assert_active(lab, target, good.version)
    history = json.loads((tmp_path / "dev" / "state.json").read_text())["history"]
    assert history[-1]["action"] == "rolled-back" and history[-1]["restored"] == good.version


def test_bundle_without_golden_is_refused_unless_no_golden(lab, bundles, tmp_path):
    target = lab.target(lab.servers[0], tmp_path / "dev")
    refused = flash(bundles["nogolden"], target)
    assert refused.status == "refused" and "no golden inputs" in refused.reason
    assert not (tmp_path / "dev" / "versions").exists()  # preflight wrote nothing
    ok = flash(bundles["nogolden"], target, settings=FlashSettings(golden=False))
    assert ok.ok and ok.health["golden"]["ok"] is None and ok.health["latency_ms"] > 0


def test_latency_limit_fails_the_check(lab, bundles, tmp_path):
    target = lab.target(lab.servers[0], tmp_path / "dev")
    result = flash(bundles["v1"], target, settings=FlashSettings(max_latency_ms=0.0))
    assert result.status == "rolled-back" and "over the limit" in result.reason
    assert result.active is None and not (tmp_path / "dev" / "current").exists()


def test_connection_dropped_mid_upload_then_resumed(lab, bundles, tmp_path):
    server = lab.servers[0]
    target = lab.target(server, tmp_path / "dev")
    assert flash(bundles["v1"], target).ok
    killed = []

    def drop(_sent: int) -> None:
        if not killed:
            killed.append(server.kill_sessions())

    dropped = flash(bundles["big"], target, settings=FlashSettings(progress=drop))
    assert killed and killed[0] > 0
    assert dropped.status == "failed" and "connection dropped" in dropped.reason
    assert "'v1-" in dropped.reason and "still active" in dropped.reason
    assert_active(lab, target, dropped.previous)
    resumed = flash(bundles["big"], target)
    assert resumed.ok, resumed.reason
    assert resumed.resumed_bytes > 0 and resumed.sent_bytes < 2_000_000
    assert_active(lab, target, resumed.version)


def test_disk_full_keeps_previous_version(lab, bundles, tmp_path):
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "1500k"):
        pytest.skip("cannot mount a tmpfs here (needs root): no small disk to fill")
    try:
        target = lab.target(lab.servers[0], disk / "edgekit")
        good = flash(bundles["v1"], target)
        assert good.ok
        refused = flash(bundles["big"], target)
        assert refused.status == "refused" and "not enough free disk" in refused.reason
        full = flash(bundles["big"], target, settings=FlashSettings(check_space=False))
        assert full.status == "failed" and "disk is full" in full.reason, full.reason
        assert f"'{good.version}' is still active" in full.reason
        assert not list((disk / "edgekit" / "staging").glob("big-*"))  # partial upload removed
        assert_active(lab, target, good.version)
    finally:
        umount(disk)


def test_signatures_required_by_the_device(lab, bundles, tmp_path):
    import shutil

    from edgekit.signing import generate_keypair, read_public_key, sign_bundle

    key, pub = generate_keypair(tmp_path / "keys" / "release")
    other, _ = generate_keypair(tmp_path / "keys" / "other")
    root = tmp_path / "dev"
    root.mkdir()
    (root / "device.json").write_text(json.dumps(
        {"require_signature": True, "trusted_keys": [read_public_key(pub)]}))
    target = lab.target(lab.servers[0], root)
    signed = shutil.copytree(bundles["v1"], tmp_path / "signed")
    sign_bundle(signed, key)
    good = flash(signed, target)
    assert good.ok and good.details == {}
    unsigned = flash(bundles["v2"], target)
    assert unsigned.status == "refused" and "requires signed bundles" in unsigned.reason
    tampered = shutil.copytree(bundles["v3"], tmp_path / "tampered")
    sign_bundle(tampered, key)
    manifest = json.loads((tampered / "edgekit.json").read_text())
    manifest["labels"] = ["x", "y", "z"]
    (tampered / "edgekit.json").write_text(json.dumps(manifest))
    result = flash(tampered, target)
    assert result.status == "refused" and "'edgekit.json' changed after signing" in result.reason
    foreign = shutil.copytree(bundles["v3"], tmp_path / "foreign")
    sign_bundle(foreign, other)
    result = flash(foreign, target)
    assert result.status == "refused" and "does not trust" in result.reason
    assert_active(lab, target, good.version)


def test_host_keys_are_checked(lab, bundles, tmp_path):
    server = lab.servers[0]
    target = lab.target(server, tmp_path / "dev")
    good = flash(bundles["v1"], target)
    wrong = tmp_path / "wrong_known_hosts"
    other_key = Path(lab.dir / "sshd0" / "host_key.pub").read_text().split()
    other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(tmp_path / "impostor")], check=True)
    assert other.returncode == 0 and other_key
    impostor = (tmp_path / "impostor.pub").read_text().split()
    wrong.write_text(f"[127.0.0.1]:{server.port} {impostor[0]} {impostor[1]}\n")
    result = flash(bundles["v2"], lab.target(server, tmp_path / "dev", known_hosts=str(wrong)))
    assert result.status == "refused" and "does not match the key recorded" in result.reason
    unknown = tmp_path / "empty_known_hosts"
    result = flash(bundles["v2"], lab.target(server, tmp_path / "dev",
                                               known_hosts=str(unknown)))
    assert result.status == "refused" and "is not recorded" in result.reason
    assert_active(lab, target, good.version)
    # Trust on first use only when asked, and the key is recorded for next time.
    tofu = flash(bundles["v2"], lab.target(server, tmp_path / "dev", known_hosts=str(unknown),
                                            accept_new_host_key=True))
    assert tofu.ok and f"[127.0.0.1]:{server.port}" in unknown.read_text()
    again = flash(bundles["v2"], lab.target(server, tmp_path / "dev", known_hosts=str(wrong),
                                             accept_new_host_key=True))
    assert again.status == "refused"  # a CHANGED key is never accepted


def test_preflight_lists_everything_missing(lab, bundles, tmp_path):
    target = lab.target(lab.servers[0], tmp_path / "dev")
    result = flash(bundles["v1"], target, settings=FlashSettings(board="rpi5"))
    assert result.status == "refused"
    assert "board 'rpi5'" in result.reason and "artifact onnx/fp32" in result.reason
    assert "the device is x86_64 but board 'rpi5' is aarch64" in result.details["problems"]
    bad_python = flash(bundles["v1"], lab.target(lab.servers[0], tmp_path / "dev",
                                                 python="/nonexistent/python3"))
    assert bad_python.status == "refused" and "--remote-python" in bad_python.reason


def test_unreachable_device(bundles, tmp_path, lab):
    target = parse_target("ssh://nobody@127.0.0.1:1/x", known_hosts=str(lab.known_hosts),
                          identity=str(lab.client_key), connect_timeout=5)
    result = flash(bundles["v1"], target)
    assert result.status == "unreachable" and "cannot connect" in result.reason


def test_local_path_target(bundles, tmp_path):
    target = parse_target(str(tmp_path / "sdcard root"), python=PYTHON)
    assert target.scheme == "file"
    result = flash(bundles["v1"], target)
    assert result.ok, result.reason
    assert (tmp_path / "sdcard root" / "current" / "model.onnx").is_file()


def test_agent_refuses_paths_leaving_staging(tmp_path):
    from edgekit.devices.flash.deploy import AGENT

    stage = tmp_path / "root" / "staging" / "v"
    stage.mkdir(parents=True)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": "v", "artifact": {"file": "m.onnx"},
                                "files": {"../../../evil": {"sha256": "0", "size": 1}}}))
    proc = subprocess.run([PYTHON, str(AGENT), "activate", "--root", str(tmp_path / "root"),
                           "--plan", str(plan)], capture_output=True, text=True)
    answer = json.loads(proc.stdout)
    assert proc.returncode == 1 and "leaves the staging directory" in answer["reason"]
    assert not (tmp_path / "root" / "current").exists()


def test_target_uris():
    t = parse_target("ssh://pi@cam-01:2222/opt/edge kit", python="/opt/venv/bin/python")
    assert (t.user, t.host, t.port, t.root, t.python) == ("pi", "cam-01", 2222, "/opt/edge kit",
                                                          "/opt/venv/bin/python")
    assert parse_target("pi@cam-01").root == "edgekit"  # under the user's home
    assert parse_target("ssh://pi@cam-01/~/models").root == "models"
    with pytest.raises(Exception, match="Unknown target scheme"):
        parse_target("ftp://cam-01/x")


def test_bundle_from_the_real_exporter(lab, tmp_path):
    """The golden file export/parity.py writes is what the device health check replays."""
    from helpers import make_yolo_onnx

    from edgekit.cli import main

    onnx_file = make_yolo_onnx(tmp_path / "det.onnx", imgsz=64, boxes=[(30, 20, 10, 8, 2, 0.9)])
    main(["export", str(onnx_file), "-o", str(tmp_path / "exported"), "--labels", "a,b,c"])
    target = lab.target(lab.servers[0], tmp_path / "dev")
    result = flash(tmp_path / "exported", target)
    assert result.ok, result.reason
    assert result.health["golden"]["images"] >= 1 and result.health["golden"]["ok"]

"""`edgekit bench --inventory` with an emulated Raspberry Pi 5 (tests/emulated_pi.py: aarch64
Python under qemu-user behind a real sshd) beside this host: one command, one two-board table,
the Pi's results marked emulated and kept apart from real boards' history."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml
from flash_env import PYTHON, Lab, make_bundle, needs_sshd

from edgekit.cli import main

pytestmark = [needs_sshd, pytest.mark.emulated_pi]


def test_this_host_and_an_emulated_pi5_in_one_table(emulated_pi, tmp_path):
    lab = Lab(tmp_path)
    try:
        host, pi = lab.server(), lab.server()
        bundle = make_bundle(tmp_path / "tiny", name="tiny")
        inventory = tmp_path / "fleet.yaml"
        inventory.write_text(yaml.safe_dump({
            "defaults": {"python": PYTHON, "identity": str(lab.client_key),
                         "known_hosts": str(lab.known_hosts)},
            "hosts": {"this-host": {"target": host.uri(tmp_path / "host")},
                      "pi5": {"target": pi.uri(tmp_path / "pi"),
                              "python": str(emulated_pi.python)}}}))
        out, md, history = tmp_path / "r.json", tmp_path / "t.md", tmp_path / "h.sqlite"
        # No peak probe: under emulation it measures qemu, and each window is a new emulated
        # Python (about 20 s).
        main(["bench", str(bundle), "--inventory", str(inventory), "--runs", "3", "--warmup",
              "1", "--peak-seconds", "0", "--json", str(out), "--markdown", str(md),
              "--history", str(history)])
    finally:
        lab.stop()
    devices = {d["device"]: d for d in json.loads(out.read_text())["devices"]}
    assert devices["this-host"]["status"] == devices["pi5"]["status"] == "ok"
    [pi_result] = devices["pi5"]["results"]
    fp = pi_result["fingerprint"]
    assert (devices["pi5"]["board"], fp["arch"], fp["device_tree_model"]) == (
        "rpi5", "aarch64", "Raspberry Pi 5 Model B Rev 1.0")
    assert fp["emulated"] == "qemu-user"  # detected on the device itself, not declared
    assert pi_result["golden"]["ok"]  # aarch64 onnxruntime reproduces the x86 golden outputs
    assert not devices["this-host"]["results"][0]["fingerprint"]["emulated"]
    table = md.read_text()
    assert "| pi5 (emulated) | rpi5 | onnx/fp32 |" in table
    assert "| this-host | cpu-x86_64 | onnx/fp32 |" in table
    with sqlite3.connect(history) as conn:
        boards = sorted(b for (b,) in conn.execute("SELECT board FROM runs"))
    assert boards == ["cpu-x86_64", "rpi5@emulated"]

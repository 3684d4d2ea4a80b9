"""A device that is offline during a rollout is retried, not forgotten (issue 11).

Four install roots behind real sshd processes on 127.0.0.1; one device's inventory entry points
at a port where nothing listens yet. The rollout retries it within its wave and again in the
next, flashes the others, and ends ``incomplete`` (exit 2) with that device ``unreachable``.
Then an sshd starts listening on that very port (the device comes online, same identity):
``--resume`` flashes it alone and the rollout is complete; each device's own history shows
one activation of the version.
"""

from __future__ import annotations

import json

import pytest
import yaml
from flash_env import PYTHON, Lab, _free_port, make_bundle, needs_sshd
from test_rollout import _python

from edgekit.cli import main

pytestmark = needs_sshd
OFFLINE = 1  # wave 1 of --canary 1 --waves 50%,100% over 4 devices: retried in wave 2 too


@pytest.fixture
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("rollout-offline"))
    lab.server()
    yield lab
    lab.stop()


def _rollout(*args: str) -> tuple[int, dict]:
    out = args[args.index("--json") + 1]
    try:
        main(["rollout", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    with open(out) as handle:
        return code, json.load(handle)


def test_offline_device_is_retried_then_flashed_on_resume(lab, tmp_path):
    server = lab.servers[0]
    bundle = make_bundle(tmp_path / "bundle", name="fleet")
    roots = [tmp_path / "fleet" / f"dev{i}" for i in range(4)]
    hosts = {f"cam-{i}": {"target": server.uri(root)} for i, root in enumerate(roots)}
    port = _free_port()  # nothing listens here yet: the device is offline
    hosts[f"cam-{OFFLINE}"]["target"] = server.uri(roots[OFFLINE]).replace(
        f":{server.port}/", f":{port}/")
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(yaml.safe_dump({"defaults": {
        "python": PYTHON, "identity": str(lab.client_key), "known_hosts": str(lab.known_hosts),
        "board": "cpu-x86_64", "connect_timeout": 5}, "hosts": hosts}))
    state = tmp_path / "rollout.sqlite"

    code, first = _rollout(str(bundle), "--inventory", str(inventory), "--canary", "1",
                           "--waves", "50%,100%", "--retries", "1", "--parallel", "4",
                           "--state", str(state), "--json", str(tmp_path / "first.json"))
    assert code == 2 and first["status"] == "incomplete" and first["halted"] is None
    devices = {d["name"]: d for d in first["devices"]}
    offline = devices[f"cam-{OFFLINE}"]
    assert offline["status"] == "unreachable" and "cannot connect" in offline["reason"]
    assert offline["wave"] == 1 and offline["attempts"] == 4  # 2 tries in wave 1, 2 in wave 2
    assert first["counts"] == {"ok": 3, "unreachable": 1}
    assert not (roots[OFFLINE] / "current").exists()

    lab.server(port=port)  # the device comes online at the address the inventory names
    code, done = _rollout("--resume", "--state", str(state), "--json", str(tmp_path / "done.json"))
    assert code == 0 and done["status"] == "complete" and done["counts"] == {"ok": 4}
    again = {d["name"]: d for d in done["devices"]}
    assert again[f"cam-{OFFLINE}"]["attempts"] == 5 and again[f"cam-{OFFLINE}"]["after"] == \
        done["version"]
    for name, row in again.items():
        if name != f"cam-{OFFLINE}":
            assert row["attempts"] == 1 and row["finished"] == devices[name]["finished"]
    version = done["version"]
    for root in roots:
        history = json.loads((root / "state.json").read_text())["history"]
        activations = [h for h in history if h["version"] == version and h["action"] == "activate"]
        assert len(activations) == 1, f"{root.name} was activated {len(activations)} times"
        assert (root / "current").resolve().name == version


def test_halt_on_share_and_rollback_wave(lab, tmp_path):
    """``--halt-on 35%`` counts failures as a share of the devices tried (one broken device of
    three tried does not halt, two of five do), and ``--rollback-wave`` switches the halted
    wave's updated devices back to the version they ran before, leaving earlier waves alone."""
    server = lab.servers[0]
    old = make_bundle(tmp_path / "old", name="fleet", score=0.8)
    new = make_bundle(tmp_path / "new", name="fleet")
    broken = tmp_path / "broken-site" / "onnxruntime"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('broken onnxruntime')\n")
    roots = [tmp_path / "fleet" / f"dev{i}" for i in range(6)]
    hosts = {f"cam-{i}": {"target": server.uri(root)} for i, root in enumerate(roots)}
    wrappers = {i: tmp_path / f"python-{i}" for i in (2, 4)}  # wave 1 and wave 2 (parallel 1)
    for i, wrapper in wrappers.items():
        hosts[f"cam-{i}"]["python"] = _python(wrapper, broken=None)
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(yaml.safe_dump({"defaults": {
        "python": PYTHON, "identity": str(lab.client_key), "known_hosts": str(lab.known_hosts),
        "board": "cpu-x86_64", "connect_timeout": 5}, "hosts": hosts}))
    code, before = _rollout(str(old), "--inventory", str(inventory), "--canary", "0",
                            "--waves", "100%", "--parallel", "6", "--state",
                            str(tmp_path / "old.sqlite"), "--json", str(tmp_path / "old.json"))
    assert code == 0 and before["status"] == "complete"
    for wrapper in wrappers.values():
        _python(wrapper, broken=broken.parent)

    code, halted = _rollout(str(new), "--inventory", str(inventory), "--canary", "1",
                            "--waves", "50%,100%", "--halt-on", "35%", "--parallel", "1",
                            "--rollback-wave", "--state", str(tmp_path / "new.sqlite"),
                            "--json", str(tmp_path / "new.json"))
    assert code == 2 and halted["status"] == "halted" and halted["halted_wave"] == 2
    assert "2 of 5 devices failed" in halted["halted"] and "of those tried" in halted["halted"]
    status = {d["name"]: d["status"] for d in halted["devices"]}
    assert status == {"cam-0": "ok", "cam-1": "ok", "cam-2": "rolled-back", "cam-3": "reverted",
                      "cam-4": "rolled-back", "cam-5": "pending"}
    running = {i: (root / "current").resolve().name for i, root in enumerate(roots)}
    assert running[0] == running[1] == halted["version"]  # earlier waves keep the new model
    assert all(running[i] == before["version"] for i in (2, 3, 4, 5))
    history = json.loads((roots[5] / "state.json").read_text())["history"]
    assert all(h["version"] != halted["version"] for h in history)  # never started

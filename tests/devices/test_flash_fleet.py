"""A fleet of real sshd 'devices', the inventory file, and the flash/status/sign/keygen CLI."""

from __future__ import annotations

import json

import pytest
import yaml
from edgekit.devices.flash import load_inventory
from flash_env import PYTHON, Lab, make_bundle, needs_sshd

from edgekit.cli import main
from edgekit.errors import EdgekitError

pytestmark = needs_sshd


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("fleet"))
    for _ in range(3):
        lab.server()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("b") / "bundle", name="fleet")


def _inventory(lab: Lab, tmp_path, extra: dict | None = None):
    hosts = {f"cam-{i}": {"target": s.uri(tmp_path / f"dev{i}")}
             for i, s in enumerate(lab.servers)}
    hosts.update(extra or {})
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump({
        "defaults": {"python": PYTHON, "identity": str(lab.client_key),
                     "known_hosts": str(lab.known_hosts), "connect_timeout": 5},
        "hosts": hosts}))
    return path


def test_fleet_one_failure_stops_nothing(lab, bundle, tmp_path):
    inventory = _inventory(lab, tmp_path, {
        "cam-down": {"target": "ssh://root@127.0.0.1:1/x"},
        "cam-oldpython": {"target": lab.servers[0].uri(tmp_path / "old"),
                          "python": "/nonexistent/python3"},
        "cam-wrongboard": {"target": lab.servers[1].uri(tmp_path / "wb"), "board": "rpi5"},
    })
    out = tmp_path / "fleet.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["flash", str(bundle), "--inventory", str(inventory), "--parallel", "3",
              "--json", str(out)])
    assert exit_info.value.code == 2
    results = {r["target"]: r for r in json.loads(out.read_text())["results"]}
    assert [results[f"cam-{i}"]["status"] for i in range(3)] == ["ok"] * 3
    assert results["cam-down"]["status"] == "unreachable"
    assert results["cam-oldpython"]["status"] == "refused"
    assert results["cam-wrongboard"]["status"] == "refused"
    assert "aarch64" in results["cam-wrongboard"]["reason"]
    for i in range(3):
        assert (tmp_path / f"dev{i}" / "current" / "golden.npz").is_file()


def test_cli_flash_status_rollback(lab, bundle, tmp_path, capsys):
    second = make_bundle(tmp_path / "second", name="second", score=0.5)
    server = lab.servers[2]
    uri = server.uri(tmp_path / "dev")
    ssh = ["--identity", str(lab.client_key), "--known-hosts", str(lab.known_hosts),
           "--remote-python", PYTHON]
    main(["flash", str(bundle), uri, *ssh])
    main(["flash", str(second), uri, *ssh])
    main(["status", uri, "--check", *ssh, "--json", str(tmp_path / "status.json")])
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["active"].startswith("second-") and status["check"]["ok"]
    main(["flash", "--rollback", uri, *ssh, "--json", str(tmp_path / "rb.json")])
    rolled = json.loads((tmp_path / "rb.json").read_text())["results"][0]
    assert rolled["active"].startswith("fleet-") and rolled["previous"].startswith("second-")
    with pytest.raises(SystemExit) as exit_info:  # only one earlier version to go back to
        main(["flash", "--rollback", uri, *ssh, "--known-hosts", str(tmp_path / "none")])
    assert exit_info.value.code == 2
    assert "is not recorded" in capsys.readouterr().err


def test_cli_keygen_and_sign(bundle, tmp_path):
    import shutil

    from edgekit.signing import read_public_key, verify_bundle

    main(["keygen", str(tmp_path / "release")])
    copy = shutil.copytree(bundle, tmp_path / "signed")
    main(["sign", str(copy), "--key", str(tmp_path / "release")])
    assert verify_bundle(copy, [read_public_key(tmp_path / "release.pub")])["files"] == 3
    with pytest.raises(SystemExit):  # never overwrite a key
        main(["keygen", str(tmp_path / "release")])


def test_inventory_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("hosts: {cam-1: {board: rpi5}}\n")
    with pytest.raises(EdgekitError, match="needs a `target:`"):
        load_inventory(path)
    path.write_text("hosts: {cam-1: {target: 'pi@cam-1', colour: red}}\n")
    with pytest.raises(EdgekitError, match="unknown fields: colour"):
        load_inventory(path)
    path.write_text("defaults: {python: /opt/venv/bin/python}\n"
                    "hosts: {cam-1: 'pi@cam-1', cam-2: {target: 'ssh://pi@cam-2:2200/m', "
                    "board: rpi5, python: python3}}\n")
    hosts = load_inventory(path, known_hosts="/k")
    assert [(h.name, h.target.python, h.board, h.target.port, h.target.known_hosts)
            for h in hosts] == [("cam-1", "/opt/venv/bin/python", None, 22, "/k"),
                                ("cam-2", "python3", "rpi5", 2200, "/k")]


def test_sample_inventory_parses():
    from pathlib import Path

    hosts = load_inventory(Path(__file__).parents[2] / "samples" / "fleet.yaml")
    assert len(hosts) >= 3 and all(h.target.scheme == "ssh" for h in hosts)

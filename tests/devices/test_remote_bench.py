"""`edgekit bench --on/--inventory`: real sshd 'boards' on 127.0.0.1, the device's Python = this
interpreter (or a real environment without onnxruntime), the shipped sample detector."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from flash_env import PYTHON, Lab, make_bundle, needs_sshd

from edgekit.cli import main
from edgekit.data.synth import write_dataset

pytestmark = needs_sshd


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("rbench"))
    for _ in range(3):
        lab.server()
    yield lab
    lab.stop()


def python_without(dest: Path, missing: tuple[str, ...]) -> Path:
    """A real Python environment lacking ``missing``: a venv whose site-packages links every
    other entry of this interpreter's (edgekit, numpy... but not onnxruntime)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    source = Path(sysconfig.get_paths()["purelib"])
    target = next((dest / "lib").glob("python3*")) / "site-packages"
    for entry in source.iterdir():
        if not entry.name.lower().startswith(missing):
            (target / entry.name).symlink_to(entry)
    return dest / "bin" / "python"


def killing_python(dest: Path, after_s: float) -> Path:
    """The device's Python, but its on-board bench process is SIGKILLed after ``after_s``
    (as the OOM killer or a power glitch would); facts and cleanup run normally."""
    dest.write_text(f"""#!/bin/sh
case "$*" in
  *edgekit.devices.remote.onboard*)
    "{PYTHON}" "$@" & pid=$!
    sleep {after_s}; kill -9 $pid; wait $pid; exit $? ;;
esac
exec "{PYTHON}" "$@"
""")
    dest.chmod(dest.stat().st_mode | stat.S_IEXEC)
    return dest


def _inventory(lab: Lab, path: Path, hosts: dict) -> Path:
    path.write_text(yaml.safe_dump({
        "defaults": {"python": PYTHON, "identity": str(lab.client_key),
                     "known_hosts": str(lab.known_hosts), "connect_timeout": 5},
        "hosts": hosts}))
    return path


def _status(uri: str, lab: Lab, out: Path) -> dict:
    main(["status", uri, "--identity", str(lab.client_key), "--known-hosts",
          str(lab.known_hosts), "--remote-python", PYTHON, "--json", str(out)])
    return json.loads(out.read_text())


def test_two_boards_one_table_and_per_device_errors(lab, tmp_path):
    """One command: two boards measured into one table; a device without the runtime, an
    unreachable one and one killed mid-bench each get their own error; the model installed
    on a board is unchanged."""
    installed = make_bundle(tmp_path / "installed", name="installed")
    uri_a = lab.servers[0].uri(tmp_path / "board-a")
    ssh = ["--identity", str(lab.client_key), "--known-hosts", str(lab.known_hosts),
           "--remote-python", PYTHON]
    main(["flash", str(installed), uri_a, *ssh])
    before = _status(uri_a, lab, tmp_path / "before.json")

    inventory = _inventory(lab, tmp_path / "fleet.yaml", {
        "board-a": {"target": uri_a},
        "board-b": {"target": lab.servers[1].uri(tmp_path / "board-b")},
        "no-runtime": {"target": lab.servers[0].uri(tmp_path / "bare"),
                       "python": str(python_without(tmp_path / "bare-env", ("onnxruntime",)))},
        "down": {"target": "ssh://root@127.0.0.1:1/x"},
        "killed": {"target": lab.servers[2].uri(tmp_path / "killed"),
                   "python": str(killing_python(tmp_path / "killing-python", 2.0))},
    })
    out, md, plot, history = (tmp_path / n for n in ("r.json", "t.md", "t.png", "h.sqlite"))
    val = write_dataset(tmp_path / "val", count=3, seed=3, width=320, height=320)
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "sample", "--inventory", str(inventory), "--parallel", "5",
              "--duration", "3", "--warmup", "2", "--val", str(val), "--json", str(out),
              "--markdown", str(md), "--plot", str(plot), "--history", str(history)])
    assert exit_info.value.code == 2  # three devices failed, and the command says so

    devices = {d["device"]: d for d in json.loads(out.read_text())["devices"]}
    for name in ("board-a", "board-b"):
        board = devices[name]
        assert board["status"] == "ok", board["reason"]
        [result] = board["results"]
        assert result["artifact"] == board["chosen"] == "onnx/fp32"
        assert result["executed_on"] == "CPUExecutionProvider"
        assert result["fingerprint"]["device"] == name and result["fingerprint"]["remote"]
        assert result["fingerprint"]["cpu_model"] and result["fingerprint"]["versions"][
            "onnxruntime"]
        assert result["load_ms"] > 0 and result["first_inference_ms"] > 0
        assert result["golden"]["ok"] and result["golden"]["images"] == 4
        accuracy = result["accuracy"]  # mAP measured on the device, on the 3 images sent
        assert accuracy["source"] == "on device" and accuracy["images"] == 3
        assert 0 <= accuracy["map50_95"] <= 1
        compute = result["compute"]
        assert compute["flops"] > 1e8 and compute["peak_gflops"] > 0
        assert compute["peak_gflops"] == max(compute["peak"]["windows"])  # best of two
        assert 0 < compute["utilisation"] == pytest.approx(
            compute["gflops"] / compute["peak_gflops"])
        assert result["thermal"]["samples"] >= 3  # sampled during the 3 s sustained run
        assert result["thermal"]["temperature_c"] == "not exposed"  # this container has none
    assert devices["no-runtime"]["status"] == "refused"
    assert "install onnxruntime" in devices["no-runtime"]["reason"]
    assert devices["down"]["status"] == "unreachable"
    assert devices["killed"]["status"] == "failed"
    assert "killed" in devices["killed"]["reason"] and not devices["killed"]["results"]

    table = md.read_text()
    assert "| board-a | cpu-x86_64 | onnx/fp32 |" in table
    assert "| board-b | cpu-x86_64 | onnx/fp32 |" in table
    assert "FLOPs per inference" in table and plot.stat().st_size > 10_000
    with sqlite3.connect(history) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2

    after = _status(uri_a, lab, tmp_path / "after.json")
    for key in ("active", "kept", "staging", "history", "last_health"):
        assert after[key] == before[key], key
    assert not any((tmp_path / "board-a" / "bench-scratch").iterdir())  # scratch removed
    assert (tmp_path / "board-a" / "current").resolve().name == before["active"]

    # The same table again, from the history alone.
    again = tmp_path / "again.md"
    main(["bench", "compare", "--model", "sample", "--history", str(history),
          "--markdown", str(again)])
    assert again.read_text().count("| onnx/fp32 |") == 2


def test_connection_dropped_mid_bench_keeps_the_others(lab, tmp_path):
    """A device whose SSH session dies mid-bench fails alone; the other board completes
    (--matrix: every artifact its runtimes load, here the bundle's one)."""
    from edgekit.devices.flash import load_inventory
    from edgekit.devices.remote.bench import RemoteSettings, bench_fleet

    bundle = make_bundle(tmp_path / "tiny", name="tiny")
    inventory = _inventory(lab, tmp_path / "fleet.yaml", {
        "good": {"target": lab.servers[0].uri(tmp_path / "good")},
        "dropped": {"target": lab.servers[2].uri(tmp_path / "dropped")}})
    seen: list[tuple[str, str]] = []

    def progress(device: str, message: str) -> None:
        seen.append((device, message))
        if device == "dropped" and "measuring" in message:
            lab.servers[2].kill_sessions()

    settings = RemoteSettings(runs=10, duration_s=2.0, warmup=1, thermal_interval_s=0.3,
                              peak_seconds=0.2, matrix=True, progress=progress)
    done = asyncio.run(bench_fleet(bundle, load_inventory(inventory), settings=settings,
                                   parallel=2))
    good, dropped = sorted(done, key=lambda d: d.device != "good")
    assert good.status == "ok" and good.results[0].artifact == "onnx/fp32", good.reason
    assert good.results[0].compute["flops"] < 1e5  # the tiny graph: a ReduceMean, no Conv
    assert dropped.status == "failed" and "killed" in dropped.reason
    assert any(d == "good" and "measuring" in m for d, m in seen)  # progress streamed

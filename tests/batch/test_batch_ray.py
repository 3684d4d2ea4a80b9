"""`edgekit batch` and `edgekit eval --address` on real Ray: a two-node cluster on 127.0.0.1
(one node's raylet killed mid-run), a resumed run, and the default local Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from batch_videos import write_video
from helpers import run_cli

pytest.importorskip("ray", reason="pip install 'edgekit[scale]'")
pytest.importorskip("pyarrow", reason="pip install 'edgekit[scale]'")

EDGEKIT = [sys.executable, "-m", "edgekit"]
FRAMES = {"a": 70, "b": 50, "c": 60}  # 10 fps: 7, 5 and 6 one-second segments


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {name: write_video(root / f"{name}.mp4", frames=n, seed=i)
            for i, (name, n) in enumerate(FRAMES.items())}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    from ray_cluster import start_cluster

    started = start_cluster(tmp_path_factory.mktemp("ray-logs"))
    yield started
    started.stop()


def batch_args(videos: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [*EDGEKIT, "batch", "sample", *map(str, videos.values()), "-o", str(out),
            "--segment-seconds", "1", *extra]


def frames_by_video(out: Path) -> dict[str, list[int]]:
    from edgekit.batch import read_detections

    table = read_detections(out)
    summary = json.loads((out / "summary.json").read_text())
    names = {v["video_id"]: Path(v["source"]).stem for v in summary["videos"]}
    got: dict[str, list[int]] = {}
    for video, frame in zip(table["video"].to_pylist(), table["frame"].to_pylist(),
                            strict=True):
        got.setdefault(names[video], []).append(frame)
    return {k: sorted(v) for k, v in got.items()}


def assert_each_frame_once(out: Path, every: int = 1) -> None:
    got = frames_by_video(out)
    assert got == {k: list(range(0, n, every)) for k, n in FRAMES.items()}


def records(out: Path) -> dict[Path, tuple[int, str]]:
    return {p: (p.stat().st_mtime_ns, p.read_text()) for p in out.glob("_segments/*/*.json")}


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_resume_after_the_driver_is_killed(cluster, videos, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = batch_args(videos, out, "--address", cluster.address, "--workers", "2",
                      "--cpus-per-worker", "0.5", "--track",
                      "--config", str(Path(__file__).parents[2] / "samples/vehicle_counting.yaml"))
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=cluster.env)
    wait_for(lambda: len(records(out)) >= 4, 240, "4 segments were complete", first)
    first.send_signal(signal.SIGKILL)  # the hardest interruption: no cleanup at all
    first.wait()
    before = records(out)
    assert 4 <= len(before) < sum(n // 10 for n in FRAMES.values())
    parts = {p: out / "detections" / f"video={p.parent.name}" / f"part-{p.stem}.parquet"
             for p in before}
    parts_before = {part: part.stat().st_mtime_ns for part in parts.values()}

    second = subprocess.run(args, capture_output=True, text=True, timeout=240, env=cluster.env)
    assert second.returncode == 0, second.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["resumed"] is True
    assert summary["totals"]["segments_skipped"] == len(before)
    after = records(out)
    for path, (mtime, text) in before.items():  # completed segments were not run again
        assert after[path] == (mtime, text)
    for part, mtime in parts_before.items():  # nor were their files rewritten
        assert part.stat().st_mtime_ns == mtime
    assert_each_frame_once(out)
    assert not list(out.rglob(".*.tmp"))
    # --track/--config: track ids are written and line/zone counts add up per video
    from edgekit.batch import read_detections

    table = read_detections(out)
    assert any(ids for ids in table["track_id"].to_pylist() if ids)
    assert all("analytics" in v and "counting_line" in v["analytics"]["lines"]
               for v in summary["videos"])


def test_killed_node_segments_are_retried_exactly_once(cluster, videos, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = batch_args(videos, out, "--address", cluster.address, "--workers", "2",
                      "--cpus-per-worker", "0.5", "--every", "2")
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=cluster.env)
    node2 = set()

    def node2_worked() -> bool:
        node2.update(cluster.worker.pids())
        return any(json.loads(t)["worker"]["pid"] in node2 for _, t in records(out).values())

    wait_for(node2_worked, 240, "a worker on the second node completed a segment", run)
    done_at_kill = len(records(out))
    cluster.worker.raylet().kill()  # SIGKILL: the node dies with its work in flight
    output, _ = run.communicate(timeout=240)
    assert run.returncode == 0, output
    assert done_at_kill < sum(-(-n // 10) for n in FRAMES.values())  # it really was mid-run
    cluster.worker.process.wait(timeout=60)  # `ray start --block` saw its node die
    assert_each_frame_once(out, every=2)
    manifest = json.loads((out / "manifest.json").read_text())
    pids = Counter(w["pid"] for w in manifest["workers"])
    assert any(p in node2 for p in pids) and any(p not in node2 for p in pids)
    assert manifest["bundle_sha256"] and manifest["artifact"] and manifest["edgekit_version"]
    assert all(w["executed_on"] for w in manifest["workers"])


def test_sharded_eval_equals_single_process(cluster, tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    assert run_cli(["sample-data", str(data), "--count", "12", "--seed", "5"], capsys)[0] == 0
    assert run_cli(["eval", "sample", "--data", str(data), "--json", str(tmp_path / "one.json")],
                   capsys)[0] == 0
    # through Ray Client (ray://), the address a laptop outside the cluster would use
    sharded = subprocess.run([*EDGEKIT, "eval", "sample", "--data", str(data), "--address",
                              cluster.client_address, "--workers", "1", "--json",
                              str(tmp_path / "many.json")], capture_output=True, text=True,
                             timeout=240, env=cluster.env)
    assert sharded.returncode == 0, sharded.stderr
    one = json.loads((tmp_path / "one.json").read_text())
    many = json.loads((tmp_path / "many.json").read_text())
    assert one["map50"] > 0.1
    assert {k: many[k] for k in one} == one


def test_local_ray_default_equals_predict(videos, tmp_path: Path, capsys) -> None:
    """No --address: Ray starts here. Same detections as `edgekit predict` on the same frames
    and artifact; a corrupt video is reported without stopping the run."""
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(os.urandom(4096))
    out = tmp_path / "out"
    pick = {"a": videos["a"], "b": videos["b"]}
    run = subprocess.run([*EDGEKIT, "batch", "sample", *map(str, pick.values()), str(bad),
                          "-o", str(out), "--segment-seconds", "2", "--every", "3",
                          "--sink", "jsonl", "--workers", "2"],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 1, run.stderr  # one unreadable input: reported, exit 1
    assert "corrupt.mp4" in run.stderr
    summary = json.loads((out / "summary.json").read_text())
    status = {Path(v["source"]).name: v["status"] for v in summary["videos"]}
    assert status == {"a.mp4": "complete", "b.mp4": "complete", "corrupt.mp4": "unreadable"}
    from edgekit.batch import read_detections

    rows = read_detections(out).to_pylist()
    manifest = json.loads((out / "manifest.json").read_text())
    for name, video in pick.items():
        assert run_cli(["predict", "sample", str(video), "-o", str(tmp_path / name)],
                       capsys)[0] == 0
        predicted = [json.loads(line) for line in
                     (tmp_path / name / "detections.jsonl").read_text().splitlines()]
        mine = sorted((r for r in rows if r["source"] == str(video)), key=lambda r: r["frame"])
        assert [r["frame"] for r in mine] == list(range(0, FRAMES[name], 3))
        for row in mine:
            expected = predicted[row["frame"]]["detections"]
            got = [{"xyxy": [round(float(v), 2) for v in box], "confidence": round(score, 4),
                    "class_id": cls, "label": label}
                   for box, score, cls, label in zip(row["boxes"], row["score"], row["class_id"],
                                                     row["label"], strict=True)]
            assert got == expected, row["frame"]
    from edgekit.devices.runners import load_runner

    # `edgekit predict` without --format runs this board's runner choice, as the workers do
    assert manifest["artifact"] == load_runner("sample").artifact.key
    assert sum(len(r["boxes"]) for r in rows) > 0


def test_sharded_export_gate_equals_single_process(cluster, tmp_path: Path, capsys) -> None:
    """`edgekit export --val --address HOST:PORT`: every artifact's gate numbers (mAP, per
    class, agreement, executed_on) equal those of the single-process gate, exactly."""
    data = tmp_path / "data"
    assert run_cli(["sample-data", str(data), "--count", "8", "--seed", "3"], capsys)[0] == 0
    # 128 px: small, yet the sample detector still finds objects (mAP ~0.09, not zeros)
    args = ["export", "sample", "--imgsz", "128", "--to", "onnx,openvino", "--precision",
            "fp32", "--val", str(data)]
    code, out, err = run_cli([*args, "-o", str(tmp_path / "one"), "--json",
                              str(tmp_path / "one.json")], capsys)
    assert code == 0, err + out
    sharded = subprocess.run([*EDGEKIT, *args, "-o", str(tmp_path / "many"), "--address",
                              cluster.address, "--json", str(tmp_path / "many.json")],
                             capture_output=True, text=True, timeout=300, env=cluster.env)
    assert sharded.returncode == 0, sharded.stderr
    assert "latency not measured (sharded)" in sharded.stderr + sharded.stdout

    def gate(name: str) -> dict[str, dict]:
        manifest = json.loads((tmp_path / name).read_text())
        return {a["format"] + "/" + a["precision"]: a["accuracy"]
                for a in manifest["artifacts"]}

    one, many = gate("one.json"), gate("many.json")
    assert set(one) == {"onnx/fp32", "openvino/fp32"}
    assert one["openvino/fp32"]["gate"] == "passed" and one["onnx/fp32"]["images"] == 8
    assert one["onnx/fp32"]["map50_95"] > 0.02 and one["onnx/fp32"]["box_iou_mean"]
    assert many == one

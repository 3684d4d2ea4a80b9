"""An export that is killed, interrupted or fails keeps what it finished and leaves no scratch.

Issue 16: an export killed for memory lost the artifacts it had finished, and a killed export
left 121 MB in /tmp. Here a real export runs in a subprocess with TMPDIR pointing at a test
directory; once the progress says an artifact is in the bundle, the process gets SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("nncf")

from edgekit.bundle import Bundle  # noqa: E402
from edgekit.data.synth import LABELS, write_dataset  # noqa: E402
from edgekit.errors import DatasetError  # noqa: E402

IMGSZ = 64

# The real CLI on the sample detector at 64 px (max_drop 100: every gate passes, the test is
# about what stays on disk, not accuracy).
_CLI = "from edgekit.cli import main; main()"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupt")
    write_dataset(root / "val", count=6, seed=1, width=96, height=72)
    write_dataset(root / "cal", count=6, seed=2, width=96, height=72)
    return root


def _leftovers(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_export_keeps_finished_artifacts_and_no_scratch(
        data: Path, tmp_path: Path, signum: signal.Signals) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "out" / "bundle"
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1", "COLUMNS": "300"}
    args = ["export", "sample", "-o", str(out), "--imgsz", str(IMGSZ), "--to", "onnx,openvino",
            "--precision", "fp32,fp16,int8", "--calib", str(data / "cal" / "images"),
            "--calib-count", "6", "--val", str(data / "val"), "--max-drop", "100"]
    child = subprocess.Popen([sys.executable, "-c", _CLI, *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finished, lines = [], []
    try:
        for line in child.stdout:
            lines.append(line)
            if ": in the bundle" in line:
                finished.append(line.split(":")[0].split()[-1])
                if len(finished) == 3:  # all of ONNX; the OpenVINO cells still to come
                    child.send_signal(signum)
                    break
        rest, _ = child.communicate(timeout=120)
        lines.append(rest)
    finally:
        if child.poll() is None:
            child.kill()
    text = "".join(lines)
    assert child.returncode == 128 + signum, text  # the shell's convention; 130 for Ctrl-C
    # A valid bundle (every file's sha256 verified) with at least what was announced.
    bundle = Bundle.load(out)
    keys = [a.key for a in bundle.manifest.artifacts]
    assert finished == ["onnx/fp32", "onnx/fp16", "onnx/int8"]
    assert keys[:3] == finished, keys
    assert all(a.accuracy and a.accuracy["gate"] in ("reference", "passed")
               for a in bundle.manifest.artifacts)
    assert (out / "export_report.json").is_file()
    # No scratch: nothing in TMPDIR, no staging directory or part file beside or in the bundle.
    assert _leftovers(tmpdir) == [], text
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_failing_export_leaves_no_scratch(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from edgekit.export import export
    from edgekit.export.models.yolo_lite import YoloLite

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    frames = tmp_path / "frames"
    write_dataset(tmp_path / "scenes", count=3, seed=3, width=96, height=72)
    (tmp_path / "scenes" / "images").rename(frames)  # plain images: the label-free gate
    torch.manual_seed(0)
    model = YoloLite(len(LABELS), imgsz=IMGSZ).eval()
    for head in model.heads:  # no detection at all
        torch.nn.init.constant_(head.cls[-1].bias, -30.0)
    with pytest.raises(DatasetError, match="nothing to compare"):
        export(model, tmp_path / "b", imgsz=IMGSZ, labels=list(LABELS), val=frames,
               formats=("onnx",), precisions=("fp32", "fp16"))
    assert _leftovers(tmpdir) == []
    assert not (tmp_path / "b").exists()
    assert tempfile.tempdir == str(tmpdir)  # restored after the export


def test_scratch_of_a_dead_export_is_removed_by_the_next(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from edgekit.export.scratch import PREFIX, scratch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f"{PREFIX}{dead.pid}-abc"
    (orphan / "tmp").mkdir(parents=True)
    alive = tmp_path / f"{PREFIX}{os.getpid()}-xyz"  # this process: still running
    alive.mkdir()
    with scratch() as work:
        assert work.parent == tmp_path and tempfile.gettempdir() == str(work / "tmp")
        assert not orphan.exists() and alive.exists()
    assert not work.exists()

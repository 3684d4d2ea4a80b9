"""Ultralytics checkpoints (best.pt) through every command, read by a real ultralytics.

ultralytics is never a dependency of edgekit (AGPL-3.0): ``make setup`` installs it into the
test environment only, with ``--no-deps`` (it asks for the GUI opencv-python, which would
overwrite the headless cv2). The checkpoints are built offline from Ultralytics' shipped YAML
with random weights in a subprocess (tests/ultralytics_checkpoints.py), and every command
that imports ultralytics runs in a subprocess too: ultralytics patches torch.save, cv2 and
numpy's printing at import, which must not leak into the other tests.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import run_cli  # noqa: E402

try:
    importlib.metadata.version("ultralytics")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("ultralytics is not installed (make setup installs it for the tests: "
                "pip install --no-deps ultralytics)", allow_module_level=True)

MAKER = Path(__file__).resolve().parents[1] / "ultralytics_checkpoints.py"
IMGSZ = 64
NAMES = ["car", "truck", "person"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """Offline, settings and caches in temp dirs.

    ultralytics reads torchvision's version from its package metadata at import (and never
    imports torchvision on the paths used here); PyPI's torchvision wheels are CUDA builds
    that do not load beside the CPU torch (shared/TOOLCHAIN.md), so where it is absent the
    subprocesses get a metadata-only record of it, and nothing else.
    """
    root = tmp_path_factory.mktemp("ultralytics-env")
    extra = dict(YOLO_CONFIG_DIR=str(root / "config"), YOLO_OFFLINE="1",
                 YOLO_AUTOINSTALL="false", XDG_CACHE_HOME=str(root / "cache"))
    try:
        importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        record = root / "site" / "torchvision-0.28.0.dist-info"
        record.mkdir(parents=True)
        (record / "METADATA").write_text("Metadata-Version: 2.1\nName: torchvision\n"
                                         "Version: 0.28.0\n")
        extra["PYTHONPATH"] = os.pathsep.join(
            [str(root / "site")] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return {**os.environ, **extra}


def run(args: list[str], env: dict[str, str], *, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=600)
    if ok:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def edgekit(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return run(["-m", "edgekit", *args], env, **kw)


@pytest.fixture(scope="module")
def made(env, tmp_path_factory) -> dict[str, Path]:
    """The checkpoints, their own outputs, two real images and a dataset in their classes."""
    root = tmp_path_factory.mktemp("ultralytics")
    run([str(MAKER), str(root), str(IMGSZ)], env)
    data = root / "data"
    for sub in ("images", "labels"):
        (data / sub).mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(3):
        cv2.imwrite(str(data / "images" / f"{i}.jpg"), rng.integers(0, 255, (72, 96, 3),
                                                                   np.uint8))
        (data / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    (data / "classes.txt").write_text("\n".join(NAMES) + "\n")
    return {"root": root, "data": data, "images": data / "images",
            **{name: root / f"{name}.pt" for name in ("v8", "y26", "cls")}}


def _onnx_output(path: Path, image: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: image})[0]


def test_export_checkpoint_with_the_gate_matches_its_own_outputs(made, env,
                                                                 tmp_path: Path) -> None:
    from edgekit.bundle import Bundle, Format, Precision

    out = tmp_path / "bundle"
    done = edgekit(["export", str(made["v8"]), "-o", str(out), "--to", "onnx",
                    "--precision", "fp32,fp16", "--val", str(made["images"])], env)
    assert "loaded Ultralytics checkpoint v8.pt (Detect head, 3 classes)" in done.stderr
    assert "head: yolov8 (stated by the source" in done.stderr
    bundle = Bundle.load(out)
    manifest = bundle.manifest
    assert manifest.labels == NAMES and manifest.output.kind == "yolov8"
    assert tuple(manifest.input.shape) == (1, 3, IMGSZ, IMGSZ)  # the checkpoint's imgsz
    parity = manifest.provenance.parity
    assert parity["reference"] == "torch" and parity["max_abs_diff"] <= parity["tolerance"]
    fp16 = bundle.select(format=Format.ONNX, precision=Precision.FP16)
    assert fp16.accuracy["label_free"] is True and fp16.accuracy["gate"] == "passed"

    # Against the checkpoint's own outputs, from Ultralytics' loader and its normal forward.
    with np.load(made["root"] / "reference.npz") as reference:
        image, expected = reference["input"], reference["v8"]
    fp32 = bundle.select(format=Format.ONNX, precision=Precision.FP32)
    got = _onnx_output(bundle.file(fp32), image)
    assert got.shape == expected.shape == (1, 4 + len(NAMES), 84)  # 8x8 + 4x4 + 2x2 cells
    assert np.max(np.abs(got - expected)) < 1e-4 * max(1.0, np.abs(expected).max())


def test_end_to_end_checkpoint_exports_as_end2end(made, env, tmp_path: Path) -> None:
    from edgekit.bundle import Bundle, Format, Precision
    from edgekit.heads.end2end import End2EndHead

    out = tmp_path / "bundle"
    done = edgekit(["export", str(made["y26"]), "-o", str(out), "--to", "onnx",
                    "--precision", "fp32"], env)
    assert "one-to-one branch" in done.stderr and "head: end2end" in done.stderr
    bundle = Bundle.load(out)
    assert bundle.manifest.output.kind == "end2end" and bundle.manifest.labels == NAMES
    with np.load(made["root"] / "reference.npz") as reference:
        image, expected = reference["input"], reference["y26"]
    fp32 = bundle.select(format=Format.ONNX, precision=Precision.FP32)
    got = _onnx_output(bundle.file(fp32), image)
    assert got.shape == expected.shape and got.shape[2] == 6
    # Top-k rows: near-equal scores may come out in either order; matched row by row.
    got, expected = End2EndHead.comparable(got, expected)
    assert got.shape[1] > 0
    assert np.max(np.abs(got - expected)) < 1e-4 * max(1.0, np.abs(expected).max())


def test_every_command_opens_a_checkpoint(made, env, tmp_path: Path) -> None:
    model = str(made["v8"])
    done = edgekit(["info", model], env)
    assert "head: yolov8 (stated by the source, Ultralytics checkpoint v8.pt" in done.stderr
    # Converted once, parity-checked, cached with what the checkpoint said.
    cached = list(Path(env["XDG_CACHE_HOME"]).glob("edgekit/checkpoints/*/checkpoint.json"))
    assert len(cached) == 1
    facts = json.loads(cached[0].read_text())
    assert facts["labels"] == NAMES and facts["imgsz"] == [IMGSZ, IMGSZ]

    pred = tmp_path / "pred"
    edgekit(["predict", model, str(made["images"] / "0.jpg"), "-o", str(pred)], env)
    rows = [json.loads(line) for line in (pred / "detections.jsonl").read_text().splitlines()]
    boxes = [d for row in rows for d in row["detections"]]
    assert boxes, "the checkpoint's class-0 bias gives detections above 0.25"
    for det in boxes:
        x1, y1, x2, y2 = det["xyxy"]
        assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 72 and det["label"] in NAMES

    done = edgekit(["eval", model, "--data", str(made["data"]), "--json",
                    str(tmp_path / "eval.json")], env)
    assert json.loads((tmp_path / "eval.json").read_text())["images"] == 3
    done = edgekit(["bench", model, "--runs", "5", "--no-history", "--json",
                    str(tmp_path / "bench.json")], env)
    bench = json.loads((tmp_path / "bench.json").read_text())
    result = bench[0] if isinstance(bench, list) else bench
    assert result["latency_ms"]["p50"] > 0 and result["format"] == "onnx"


def test_a_classifier_checkpoint_is_refused(made, env, tmp_path: Path) -> None:
    done = edgekit(["export", str(made["cls"]), "-o", str(tmp_path / "b")], env, ok=False)
    assert done.returncode != 0
    assert "Ultralytics 'classify' model" in done.stderr
    assert "edgekit exports detectors" in done.stderr
    assert not (tmp_path / "b").exists()


def test_without_ultralytics_the_package_is_named(made, tmp_path: Path, monkeypatch,
                                                  capsys) -> None:
    from edgekit.export import load_model

    from edgekit.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import fails as if not installed
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(MissingDependencyError, match="ultralytics") as err:
        load_model(made["v8"])
    assert "pip install ultralytics" in str(err.value) and "AGPL" in str(err.value)
    code, _, err_text = run_cli(["predict", str(made["v8"]), str(made["images"]), "-o",
                                 str(tmp_path / "o")], capsys)
    assert code != 0 and "pip install ultralytics" in err_text

"""The CLI end to end on a real (tiny) ONNX model: outputs written, errors clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.outputs import RECORD


def edgekit(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return path


def test_predict_on_an_image_and_a_folder(tiny_onnx: Path, tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(images / f"{name}.png"), np.zeros((32, 32, 3), np.uint8))
    result = edgekit("predict", tiny_onnx, images, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != RECORD) == [
        "a.jpg",
        "b.jpg",
        "detections.jsonl",
    ]
    lines = [
        json.loads(x) for x in (tmp_path / "out" / "detections.jsonl").read_text().splitlines()
    ]
    assert [x["name"] for x in lines] == ["a", "b"]
    assert [d["label"] for d in lines[0]["detections"]] == ["class1", "class2"]

    single = edgekit("predict", tiny_onnx, images / "a.png", "-o", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    assert (tmp_path / "one" / "a.jpg").is_file()


def test_predict_on_a_video(tiny_onnx: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 5)
    result = edgekit("predict", tiny_onnx, video, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "out" / "detections.jsonl").read_text().splitlines()
    assert len(lines) == 5
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


@pytest.mark.parametrize(
    "case, message",
    [
        ("corrupt_model", "onnxruntime cannot load"),
        ("missing_model", "no such model"),
        ("empty_video", "cannot open the video"),
        ("bad_image", "not a readable image"),
        ("not_detector", "No detection head edgekit knows fits"),
        ("unknown_format", "Invalid value for '--format'"),
    ],
)
def test_bad_input_gives_a_clear_error_and_no_traceback(
    case: str, message: str, tiny_onnx: Path, tmp_path: Path
) -> None:
    model, source = tiny_onnx, tmp_path / "img.png"
    cv2.imwrite(str(source), np.zeros((8, 8, 3), np.uint8))
    extra: list[str] = []
    if case == "corrupt_model":
        model = tmp_path / "corrupt.onnx"
        model.write_bytes(tiny_onnx.read_bytes()[:50])
    elif case == "missing_model":
        model = tmp_path / "nope.onnx"
    elif case == "empty_video":
        source = tmp_path / "empty.mp4"
        source.write_bytes(b"")
    elif case == "bad_image":
        source = tmp_path / "broken.jpg"
        source.write_bytes(b"\xff\xd8 garbage")
    elif case == "not_detector":
        from helpers import make_yolo_onnx

        model = make_yolo_onnx(tmp_path / "cls.onnx", num_classes=0)
    elif case == "unknown_format":
        extra = ["--format", "caffe"]
    result = edgekit("predict", model, source, "-o", tmp_path / "out", *extra)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_info_shows_and_verifies(tiny_onnx: Path, tmp_path: Path) -> None:
    from edgekit.bundle import BundleWriter, Format, Manifest, Precision

    with BundleWriter(tmp_path / "b", Manifest(name="tiny", labels=["a", "b", "c"])) as w:
        w.add_file(tiny_onnx, format=Format.ONNX, precision=Precision.FP32)
    result = edgekit("info", tmp_path / "b", "--json", tmp_path / "m.json")
    assert result.returncode == 0, result.stderr
    assert "tiny.onnx" in result.stdout and "sha256 verified" in result.stdout  # results
    assert json.loads((tmp_path / "m.json").read_text())["labels"] == ["a", "b", "c"]
    (tmp_path / "b" / "tiny.onnx").write_bytes(b"tampered")
    tampered = edgekit("info", tmp_path / "b")
    assert tampered.returncode == 2 and "truncated or replaced" in tampered.stderr

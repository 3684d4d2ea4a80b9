"""Every head through the product: a tiny torch model per convention, exported to ONNX, then
info, predict, eval, bench and run (tracking) on it, as a user's file would go."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from head_models import MODELS, make_head_onnx  # noqa: E402
from helpers import run_cli  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")

HEAD_OF = {"rfdetr": "detr", "rtdetr": "detr"}
FACES = {"blazeface", "scrfd"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Two images, and the same as YOLO datasets labelled with 3 classes and with faces."""
    root = tmp_path_factory.mktemp("heads")
    rng = np.random.default_rng(1)
    images = root / "images"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 255, (48, 80, 3), np.uint8))
    sets = {"images": images}
    for name, classes in (("multi", ["class0", "class1", "class2"]), ("faces", ["face"])):
        ds = root / name
        (ds / "images").mkdir(parents=True)
        (ds / "labels").mkdir()
        for image in images.iterdir():
            (ds / "images" / image.name).write_bytes(image.read_bytes())
            (ds / "labels" / f"{image.stem}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
        (ds / "classes.txt").write_text("\n".join(classes) + "\n")
        sets[name] = ds
    return sets


@pytest.mark.parametrize("kind", list(MODELS))
def test_head_through_every_command(kind: str, data, tmp_path: Path, capsys) -> None:
    head = HEAD_OF.get(kind, kind)
    model = make_head_onnx(kind, tmp_path / f"{kind}.onnx")
    labels = "face" if kind in FACES else "class0,class1,class2"

    code, _, err = run_cli(["info", str(model), "--labels", labels], capsys)
    assert code == 0, err
    assert f"head: {head}" in err and "preprocessing:" in err

    out = tmp_path / "pred"
    code, _, err = run_cli(["predict", str(model), str(data["images"]), "-o", str(out),
                            "--labels", labels, "--format", "onnx"], capsys)
    assert code == 0, err
    assert f"head: {head}" in err
    lines = [json.loads(x) for x in (out / "detections.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    records = [r for line in lines for r in line["detections"]]
    assert records, f"{kind}: the random model gave nothing to check"
    for record in records:
        x1, y1, x2, y2 = record["xyxy"]
        assert 0 <= x1 <= x2 <= 80 and 0 <= y1 <= y2 <= 48 and 0 <= record["confidence"] <= 1
        assert ("keypoints" in record) == (kind in FACES)
    if kind in FACES:
        assert len(records[0]["keypoints"]) == (6 if kind == "blazeface" else 5)

    dataset = data["faces" if kind in FACES else "multi"]
    code, _, err = run_cli(["eval", str(model), "--data", str(dataset), "--labels", labels,
                            "--format", "onnx", "--json", str(tmp_path / "eval.json")], capsys)
    assert code == 0, err
    assert 0 <= json.loads((tmp_path / "eval.json").read_text())["map50"] <= 1

    code, _, err = run_cli(["bench", "run", str(model), "--runs", "3", "--warmup", "1",
                            "--no-history", "--json", str(tmp_path / "b.json")], capsys)
    assert code == 0, err

    config = tmp_path / "analytics.yaml"  # tracking, a counting line and a zone
    config.write_text("relative: true\nlines:\n  - name: mid\n    start: [0.0, 0.5]\n"
                      "    end: [1.0, 0.5]\nzones:\n  - name: left\n"
                      "    polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]\n")
    code, _, err = run_cli(["run", str(model), "--labels", labels, "--format", "onnx",
                            "--source", str(data["images"]), "--config", str(config),
                            "--sink", str(tmp_path / "events.jsonl"), "--quiet", "--json",
                            str(tmp_path / "run.json")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "run.json").read_text())["frames_out"] == 2
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    tracked = [d for e in events for d in e.get("detections", [])]
    assert tracked and all("tracker_id" in d for d in tracked)


@pytest.mark.parametrize("kind", list(MODELS))
def test_head_exports_with_the_label_free_gate(kind: str, data, tmp_path: Path) -> None:
    from edgekit.export import export

    from edgekit.bundle import Bundle

    model = make_head_onnx(kind, tmp_path / f"{kind}.onnx")
    labels = None if kind in FACES | {"yolov8", "yolov5", "yolox"} else ["a", "b", "c"]
    if kind == "rfdetr":
        labels = [*labels, "d"]  # a logit column per class, as many as the model has
    # Random weights: fp16 may flip a near-tie among a few dozen boxes on two images; the
    # gate's own verdicts are tested elsewhere, this checks every head goes through it.
    # OpenVINO for a few conventions only (keypoints, multi-output): it costs seconds each.
    formats = ("onnx", "openvino") if kind in ("yolov5", "blazeface", "scrfd", "rtdetr") \
        else ("onnx",)
    bundle = export(model, tmp_path / "b", formats=formats,
                    precisions=("fp32", "fp16"), val=str(data["images"]), labels=labels,
                    max_drop=50)
    loaded = Bundle.load(bundle.path)
    assert loaded.manifest.output.kind == HEAD_OF.get(kind, kind)
    assert loaded.manifest.output.reason and loaded.manifest.input.origin
    from edgekit.devices.flash.health import check_bundle

    # flash's health check on a device, which holds one artifact: replay of the golden set
    device = tmp_path / "device"
    shutil.copytree(bundle.path, device)
    manifest = json.loads((device / "edgekit.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"]
                             if (a["format"], a["precision"]) == ("onnx", "fp16")]
    (device / "edgekit.json").write_text(json.dumps(manifest))
    health = check_bundle(device)
    assert health["ok"] and health["golden"]["ok"], health
    for artifact in loaded.manifest.artifacts:
        assert artifact.accuracy["label_free"] is True
        assert artifact.accuracy["gate"] in ("reference", "passed")
        assert artifact.accuracy["agreement"] > 0.5


def test_heads_without_a_class_count_need_labels_to_export(tmp_path: Path, data) -> None:
    from edgekit.export import export

    from edgekit.errors import ModelError

    model = make_head_onnx("ssd", tmp_path / "ssd.onnx")
    with pytest.raises(ModelError, match="--labels"):
        export(model, tmp_path / "b", val=str(data["images"]))


def test_ultralytics_checkpoint_names_the_package(tmp_path: Path, monkeypatch) -> None:
    import zipfile

    from edgekit.export import load_model

    from edgekit.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import fails as if not installed
    best = tmp_path / "best.pt"
    with zipfile.ZipFile(best, "w") as archive:  # what torch.save writes, minus the tensors
        archive.writestr("best/data.pkl", b"\\x80\\x02cultralytics.nn.tasks\\nDetectionModel\\n")
        archive.writestr("best/version", "3\\n")
    with pytest.raises(MissingDependencyError, match="ultralytics") as err:
        load_model(best)
    assert "pip install ultralytics" in str(err.value) and "AGPL" in str(err.value)


@pytest.mark.parametrize("name,converter", [("frozen.pb", "tf2onnx"), ("saved", "tf2onnx")])
def test_tensorflow_files_name_the_converter(name: str, converter: str, tmp_path: Path,
                                             capsys) -> None:
    target = tmp_path / name
    if name == "saved":
        target.mkdir()
        (target / "saved_model.pb").write_bytes(b"\\x08\\x01")
    else:
        target.write_bytes(b"\\x0a\\x0c")
    for command in ("info", "predict", "eval"):
        args = [command, str(target)] + {"predict": [str(tmp_path), "-o", str(tmp_path / "o")],
                                         "eval": ["--data", str(tmp_path)]}.get(command, [])
        code, _, err = run_cli(args, capsys)
        assert code == 2 and converter in err, (command, err)


def _tflite_models(tmp_path: Path) -> dict[str, tuple[Path, dict]]:
    """The TFLite-native conventions as real .tflite files (LiteRT runs them), with one
    known detection each; input 64x64 NHWC, so a 64x64 image maps 1:1."""
    from odd_models import make_constant_outputs_tflite

    reg = np.zeros((1, 224, 16), np.float32)  # BlazeFace anchors at 64x64
    score = np.full((1, 224, 1), -10.0, np.float32)
    reg[0, 0, :6] = (10, 10, 20, 20, 1, 2)  # anchor 0 sits at (4, 4) px
    score[0, 0, 0] = 4.0
    face = make_constant_outputs_tflite(tmp_path / "face.tflite",
                                        {"regressors": reg, "classificators": score})
    op = "TFLite_Detection_PostProcess"
    ssd = make_constant_outputs_tflite(tmp_path / "ssd.tflite", {
        op: np.array([[[0.1, 0.2, 0.5, 0.6], [0, 0, 0.1, 0.1]]], np.float32),
        f"{op}:1": np.array([[3.0, 1.0]], np.float32),
        f"{op}:2": np.array([[0.9, 0.2]], np.float32),
        f"{op}:3": np.array([2.0], np.float32)})
    return {"blazeface": (face, {"xyxy": [4, 4, 24, 24], "keypoints": [5, 6]}),
            "ssd": (ssd, {"xyxy": [12.8, 6.4, 38.4, 32.0], "class_id": 3})}


@pytest.mark.parametrize("kind", ["blazeface", "ssd"])
def test_tflite_conventions_decode_known_boxes(kind: str, tmp_path: Path, capsys) -> None:
    model, want = _tflite_models(tmp_path)[kind]
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    code, _, err = run_cli(["predict", str(model), str(images), "-o", str(tmp_path / "out"),
                            "--format", "tflite"], capsys)
    assert code == 0, err
    assert f"head: {kind}" in err
    line = json.loads((tmp_path / "out" / "detections.jsonl").read_text().splitlines()[0])
    (record,) = line["detections"]
    np.testing.assert_allclose(record["xyxy"], want["xyxy"], atol=0.05)
    if "keypoints" in want:
        np.testing.assert_allclose(record["keypoints"][0], want["keypoints"], atol=0.05)
    if "class_id" in want:
        assert record["class_id"] == want["class_id"]


def test_mediapipe_palm_detector_is_named_and_fed_its_own_range(tmp_path: Path, data,
                                                                 capsys) -> None:
    """MediaPipe's palm detector shares BlazeFace's layout with 7 keypoints, but its graph
    feeds RGB in [0, 1]: fed [-1, 1] (the face detector's range), mediapipe 0.10.21's
    palm_detection_lite.tflite scored 1.0 on the border of photos without hands."""
    from edgekit.modelfile import open_model_file

    model = make_head_onnx("blazepalm", tmp_path / "palm.onnx")
    code, _, err = run_cli(["info", str(model)], capsys)
    assert code == 0, err
    assert "7 keypoints (MediaPipe palm detection)" in err
    manifest = open_model_file(model).manifest
    assert manifest.labels == ["palm"]
    assert manifest.input.mean == (0.0, 0.0, 0.0) and manifest.input.std == (255.0,) * 3
    face = open_model_file(make_head_onnx("blazeface", tmp_path / "face.onnx")).manifest
    assert face.labels == ["face"] and face.input.mean == (127.5,) * 3
    out = tmp_path / "pred"
    code, _, err = run_cli(["predict", str(model), str(data["images"]), "-o", str(out)], capsys)
    assert code == 0, err
    records = [r for line in (out / "detections.jsonl").read_text().splitlines()
               for r in json.loads(line)["detections"]]
    assert all(r["label"] == "palm" and len(r["keypoints"]) == 7 for r in records)


@pytest.mark.parametrize("name,what", [("face.tflite", "tflite"), ("face.xml", "openvino")])
def test_export_of_a_runtime_file_says_to_convert_it(name: str, what: str,
                                                      tmp_path: Path) -> None:
    """A MediaPipe .tflite given to export was reported as a truncated ONNX file."""
    from edgekit.export import load_model

    from edgekit.errors import ModelError

    target = tmp_path / name
    target.write_bytes(b"\x1c\x00\x00\x00TFL3" if what == "tflite" else b"<?xml version='1.0'?>")
    with pytest.raises(ModelError) as err:
        load_model(target)
    text = str(err.value)
    assert f"is a {what} model: edgekit runs it as it is" in text and "ONNX" in text
    assert "truncated" not in text and "not a model" not in text


def test_int8_of_an_old_opset_model_loads(tmp_path: Path, data) -> None:
    """Per-channel INT8 needs opset 13: MediaPipe's BlazeFace converted to ONNX at opset 11
    came out of onnxruntime's quantizer as a file onnxruntime refused, and the export died."""
    import onnx
    import torch
    from edgekit.export import export
    from head_models import BlazeFace

    from edgekit.bundle import Bundle

    source = tmp_path / "face11.onnx"
    torch.onnx.export(BlazeFace(64).eval(), (torch.rand(1, 3, 64, 64),), str(source),
                      input_names=["input"], output_names=["regressors", "classificators"],
                      opset_version=11, dynamo=False)
    bundle = export(source, tmp_path / "b", formats=("onnx",), precisions=("fp32", "int8"),
                    val=str(data["images"]), calib=str(data["images"]), max_drop=100)
    loaded = Bundle.load(bundle.path)
    int8 = loaded.select(format="onnx", precision="int8")
    proto = onnx.load(str(loaded.file(int8)))
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert int8.accuracy["gate"] == "passed" and int8.accuracy["label_free"] is True

"""The manifest is validated by its schema before any file is touched, and against its model."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from helpers import make_yolo_onnx

from edgekit.bundle import MANIFEST, Bundle, BundleWriter, Format, InputSpec, Manifest, Precision
from edgekit.detector import Detector
from edgekit.errors import BundleError
from edgekit.manifest_schema import MAX_MANIFEST_BYTES, parse_manifest

SAMPLE = Path(__file__).parents[2] / "edgekit" / "sample" / "bundle" / MANIFEST


def sample() -> dict:
    return json.loads(SAMPLE.read_text())


def refused(data: dict | str) -> str:
    raw = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(BundleError) as info:
        parse_manifest(raw, where="m.json")
    return str(info.value)


def test_the_sample_manifest_is_valid() -> None:
    assert parse_manifest(SAMPLE.read_bytes())["name"] == "sample"


@pytest.mark.parametrize("path, value, words", [
    (("schema_version",), True, "must be 1"),
    (("output", "max_detections"), -1, "less than the minimum of 1"),
    (("labels",), "abcdefg", "is not of type 'array'"),
    (("output",), "x", "is not of type 'object'"),
    (("artifacts", 0, "details"), [], "is not of type 'object'"),
    (("artifacts", 0, "file"), "model\x00.onnx", "relative path inside the bundle"),
    (("artifacts", 0, "file"), 7, "relative path inside the bundle"),
    (("artifacts", 0, "file"), "x" * 1_000_000, "relative path inside the bundle"),
    (("artifacts", 0, "file"), "/etc/passwd", "relative path inside the bundle"),
    (("artifacts", 0, "details", "companions"), {"/proc/self/mem": "0" * 64},
     "relative path inside the bundle"),
    (("artifacts", 0, "details", "companions"), {"../../../../etc/passwd": "0" * 64},
     "relative path inside the bundle"),
    (("input", "dtype"), "FP16", "allowed: ['float32', 'float16', 'uint8']"),
    (("input", "mean"), ["a", 0, 0], "is not of type 'number'"),
    (("input", "pad_value"), -3, "less than the minimum of 0"),
    (("input", "shape"), [1, 3, 0, 320], "less than the minimum of 1"),
    (("provenance", "parity", "golden"), "../golden.npz", "relative path inside the bundle"),
])
def test_each_bad_field_is_named_with_its_reason(path: tuple, value, words: str) -> None:
    data = sample()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    message = refused(data)
    where = "$" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)
    assert where in message and words in message, message
    assert len(message) < 2000  # a 1 M-character value is shortened, not echoed


def test_every_problem_is_listed_at_once() -> None:
    data = sample()
    data["labels"] = "abc"
    data["output"]["conf_threshold"] = 2
    data["artifacts"][0]["sha256"] = "nothex"
    del data["name"]
    message = refused(data)
    assert "(4 problems)" in message
    for where in ("$.labels", "$.output.conf_threshold", "$.artifacts[0].sha256",
                  "'name' is a required property"):
        assert where in message


@pytest.mark.parametrize("raw, words", [
    ("[" * 100_000 + "]" * 100_000, "nests deeper"),
    ('{"a":' * 40 + "1" + "}" * 40, "nests deeper than 32"),
    ('{"schema_version": 1, "size": ' + "9" * 5000 + "}", "not valid JSON"),
    ('{"output": {"conf_threshold": NaN}}', "NaN is not a number"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (" " * (MAX_MANIFEST_BYTES + 1), "larger than"),
])
def test_unparseable_manifests_are_refused_cleanly(raw: str, words: str) -> None:
    assert words in refused(raw)


def test_unknown_fields_are_tolerated_for_newer_minor_versions() -> None:
    data = sample()
    data["head"] = "yolov8"
    data["input"]["resize"] = "stretch"
    data["output"]["keypoints"] = 5
    assert parse_manifest(json.dumps(data))["head"] == "yolov8"


def _bundle(tmp_path: Path, **input_changes) -> Path:
    tmp_path.mkdir(exist_ok=True)
    model = make_yolo_onnx(tmp_path / "m.onnx", imgsz=32)
    spec = InputSpec(shape=(1, 3, 32, 32))
    manifest = Manifest(name="t", labels=["a", "b", "c"],
                        input=InputSpec(**{**spec.__dict__, **input_changes}))
    with BundleWriter(tmp_path / "b", manifest) as writer:
        writer.add_file(model, format=Format.ONNX, precision=Precision.FP32)
    return tmp_path / "b"


def test_a_manifest_that_contradicts_its_model_is_refused_at_open(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, shape=(1, 3, 640, 640), dtype="float16", name="pixels")
    with pytest.raises(BundleError) as info:
        Detector.open(bundle)
    message = str(info.value)
    assert "input.shape [1, 3, 640, 640] (nchw) does not fit the model's input [1, 3, 32, 32]" \
        in message
    assert "input.dtype is 'float16'" in message and "input.name is 'pixels'" in message
    assert Detector.open(_bundle(tmp_path / "ok")).artifact.key == "onnx/fp32"


def test_companions_are_confined_and_sized_before_hashing(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    data = json.loads((bundle / MANIFEST).read_text())
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"x" * 10)
    (bundle / "link.bin").symlink_to(outside)  # a name that passes the schema, then leaves
    data["artifacts"][0]["details"]["companions"] = {"link.bin": "0" * 64}
    (bundle / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="leaves the bundle"):
        Bundle.load(bundle)
    # A huge (sparse) companion whose recorded size differs is refused without being read.
    huge = bundle / "model.bin"
    with open(huge, "wb") as handle:
        handle.truncate(50 * 2**30)
    data["artifacts"][0]["details"]["companions"] = {"model.bin": {"sha256": "0" * 64,
                                                                   "size": 1024}}
    (bundle / MANIFEST).write_text(json.dumps(data))
    t0 = time.monotonic()
    with pytest.raises(BundleError, match="is 53687091200 bytes, the manifest says 1024"):
        Bundle.load(bundle)
    assert time.monotonic() - t0 < 5  # refused by its size: 50 GB were never hashed
    os.unlink(huge)


def test_companions_written_with_their_size_and_verified(tmp_path: Path) -> None:
    xml, binary = tmp_path / "m.xml", tmp_path / "m.bin"
    xml.write_text("<net/>")
    binary.write_bytes(b"weights" * 10)
    with BundleWriter(tmp_path / "b", Manifest(name="t", labels=["a"])) as writer:
        writer.add_file(xml, format=Format.OPENVINO, precision=Precision.FP32,
                        companions=[binary])
    bundle = Bundle.load(tmp_path / "b")
    assert bundle.manifest.artifacts[0].details["companions"]["m.bin"]["size"] == 70
    (tmp_path / "b" / "m.bin").write_bytes(b"weights" * 9)
    with pytest.raises(BundleError, match="'m.bin' \\(part of m.xml\\) is 63 bytes"):
        Bundle.load(tmp_path / "b")

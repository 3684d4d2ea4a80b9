"""``export --batch``: artifacts that take N images per call, read by bundle, backends, runners.

One export of the sample detector at batch 4 in all three formats (the TFLite conversion is
most of its time); every check runs the real runtimes on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from edgekit.export import export

from edgekit.bundle import Bundle
from edgekit.cli import cli
from edgekit.data.synth import render_scene
from edgekit.detector import Detector
from edgekit.errors import EdgekitError
from edgekit.preprocess import preprocess

IMAGES = [render_scene(np.random.default_rng([7, i]))[0] for i in range(6)]


@pytest.fixture(scope="module")
def batch4(tmp_path_factory) -> Bundle:
    out = tmp_path_factory.mktemp("batch4") / "bundle"
    result = CliRunner().invoke(cli, ["export", "sample", "-o", str(out), "--to",
                                       "onnx,openvino,tflite", "--batch", "4"])
    assert result.exit_code == 0, result.output
    return Bundle.load(out)


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_batch4_artifact_is_batch4_and_reads_like_any_bundle(batch4: Bundle, fmt: str) -> None:
    artifact = batch4.select(format=fmt, precision="fp32")
    assert artifact.details["batch"] == 4
    detector = Detector(batch4, artifact)  # the manifest check accepts the file's batch
    assert detector.backend.inputs[0].shape[0] == 4  # the file itself, not the manifest
    assert detector.backend.batch == 4
    reference = Detector.open("sample")  # the shipped batch-1 bundle
    for image in IMAGES[:2]:
        got, want = detector(image), reference(image)
        assert len(got) == len(want) > 0
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.5)
        np.testing.assert_array_equal(got.class_id, want.class_id)


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_partial_and_long_batches_give_each_image_its_own_result(batch4: Bundle,
                                                                 fmt: str) -> None:
    detector = Detector(batch4, batch4.select(format=fmt, precision="fp32"))
    tensors = [preprocess(image, batch4.manifest.input)[0] for image in IMAGES]
    alone = np.concatenate([detector.backend.run([t])[0] for t in tensors])
    assert alone.shape[0] == 6
    for count in (3, 4, 6):  # padded with zeros / exactly 4 / in chunks of 4
        together = detector.backend.run([np.concatenate(tensors[:count])])[0]
        assert together.shape[0] == count
        np.testing.assert_allclose(together, alone[:count], rtol=1e-4, atol=1e-2)
    assert not np.allclose(alone[0], alone[1])  # different scenes: a mix-up would show


def test_board_runner_and_info_read_the_batch4_bundle(batch4: Bundle) -> None:
    from edgekit.devices.runners import load_runner

    runner = load_runner(batch4.path, board="cpu-x86_64", format="onnx")
    assert runner.artifact.details["batch"] == 4
    assert len(runner(IMAGES[0])) == len(Detector.open("sample")(IMAGES[0]))
    result = CliRunner().invoke(cli, ["info", str(batch4.path)])  # verifies every sha256
    assert result.exit_code == 0, result.output
    manifest = json.loads((batch4.path / "edgekit.json").read_text())
    assert {a["details"]["batch"] for a in manifest["artifacts"]} == {4}


def test_dynamic_batch_onnx_and_openvino(tmp_path: Path) -> None:
    bundle = export("sample", tmp_path / "dyn", formats=("onnx", "openvino"), batch="dynamic")
    tensors = np.concatenate([preprocess(image, bundle.manifest.input)[0]
                              for image in IMAGES[:3]])
    for artifact in bundle.manifest.artifacts:
        assert artifact.details["batch"] == "dynamic"
        detector = Detector(bundle, artifact)
        assert detector.backend.inputs[0].shape[0] is None
        assert detector.backend.run([tensors])[0].shape[0] == 3


def test_dynamic_batch_for_tflite_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="TFLite files have a fixed batch"):
        export("sample", tmp_path / "x", formats=("onnx", "tflite"), batch="dynamic")
    with pytest.raises(EdgekitError, match="not a batch size"):
        export("sample", tmp_path / "y", batch="0")
    assert not (tmp_path / "x").exists()

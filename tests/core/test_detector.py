"""Detector on a plain YOLOv8-style .onnx: boxes in the original image's pixels, labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.detector import Detector, open_bundle
from edgekit.errors import ModelError


def test_plain_onnx_detects_in_original_pixels(tiny_onnx: Path) -> None:
    detector = Detector.open(tiny_onnx)
    assert detector.labels == ["class0", "class1", "class2"]
    image = np.zeros((64, 64, 3), np.uint8)  # 2x the 32 px input: boxes scale by 2
    dets = detector(image)
    assert dets.class_id.tolist() == [1, 2]
    np.testing.assert_allclose(dets.xyxy[0], [12, 18, 28, 30])
    assert detector.times.inference > 0


def test_ultralytics_metadata_names_are_used(tiny_onnx: Path) -> None:
    model = onnx.load(tiny_onnx)
    entry = model.metadata_props.add()
    entry.key, entry.value = "names", "{0: 'person', 1: 'bicycle', 2: 'car'}"
    onnx.save(model, tiny_onnx)
    assert Detector.open(tiny_onnx).labels == ["person", "bicycle", "car"]


def test_missing_and_unknown_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model"):
        open_bundle(tmp_path / "nope.onnx")
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"not a bundle directory or a .*\.onnx"):
        open_bundle(other)

"""The onnxruntime backend on real (tiny) models: info, run, honest device, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.backends import BackendOptions, load_backend
from edgekit.bundle import Format
from edgekit.errors import ModelError


def test_runs_and_reports_tensors(tiny_onnx: Path) -> None:
    backend = load_backend(tiny_onnx, Format.ONNX, options=BackendOptions(threads=1))
    assert [i.name for i in backend.inputs] == ["images"]
    assert backend.inputs[0].shape == (1, 3, 32, 32)
    assert backend.outputs[0].dtype == np.float32
    out = backend.run([np.zeros((1, 3, 32, 32), np.float32)])[0]
    assert out.shape == (1, 7, 8)
    assert backend.executed_on == "CPUExecutionProvider"
    assert "onnxruntime" in backend.versions()


def test_missing_accelerator_is_not_reported_as_used(tiny_onnx: Path) -> None:
    # This machine has no CUDA: onnxruntime falls back to CPU, and we must say so.
    backend = load_backend(tiny_onnx, Format.ONNX, options=BackendOptions(device="cuda"))
    assert backend.requested[0] == "CUDAExecutionProvider"
    assert backend.executed_on == "CPUExecutionProvider"


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0JFIF not a model", None])
def test_bad_files_raise_model_error(
    tmp_path: Path, tiny_onnx: Path, content: bytes | None
) -> None:
    bad = tmp_path / "bad.onnx"
    if content is None:  # truncated real model
        bad.write_bytes(tiny_onnx.read_bytes()[:40])
    else:
        bad.write_bytes(content)
    with pytest.raises(ModelError, match="bad.onnx"):
        load_backend(bad, Format.ONNX)


def test_wrong_input_count(tiny_onnx: Path) -> None:
    backend = load_backend(tiny_onnx, Format.ONNX)
    with pytest.raises(ModelError, match="takes 1 inputs, got 2"):
        backend.run([np.zeros((1, 3, 32, 32), np.float32)] * 2)


def test_unknown_device(tiny_onnx: Path) -> None:
    with pytest.raises(ModelError, match="Use one of: cpu, cuda"):
        load_backend(tiny_onnx, Format.ONNX, options=BackendOptions(device="tpu"))

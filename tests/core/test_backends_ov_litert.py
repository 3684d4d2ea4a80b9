"""OpenVINO and LiteRT backends on small odd models edgekit did not export."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from odd_models import (
    INT8_IN,
    INT8_OUT,
    make_int8_tflite,
    make_multi_input_onnx,
    make_nhwc_detector_tflite,
    make_openvino_ir,
    make_two_input_tflite,
)

from edgekit.backends import BackendOptions, load_backend
from edgekit.backends.litert import LiteRtBackend, Quantization
from edgekit.bundle import Format
from edgekit.errors import EdgekitError, MissingDependencyError, ModelError


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("odd")
    onnx_path = make_multi_input_onnx(root / "odd.onnx")
    return {"onnx": onnx_path, "xml": make_openvino_ir(onnx_path, root / "odd.xml")}


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((2, 3, 5, 7), dtype=np.float32), np.array([1.5], np.float32),
            np.array([4, 5, 6], np.int64)]


@pytest.mark.parametrize("key,fmt", [("xml", Format.OPENVINO), ("onnx", Format.ONNX)])
def test_openvino_runs_ir_and_onnx_like_onnxruntime(odd, key, fmt) -> None:
    ov = load_backend(odd[key], fmt, name="openvino", options=BackendOptions(threads=1))
    ref = load_backend(odd["onnx"], Format.ONNX, name="onnxruntime")
    assert [i.name for i in ov.inputs] == ["image", "scale", "ids"]
    assert ov.inputs[0].shape == (None, 3, None, None)
    assert ov.inputs[2].dtype == np.int64
    got, want = ov.run(_inputs()), ref.run(_inputs())
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_array_equal(got[1], [5, 6, 7])
    assert ov.executed_on == "CPU"
    # fp32 means f32: not the bf16 this CPU family would pick by default.
    assert ov.inference_precision == "f32"
    assert "openvino" in ov.versions()


@pytest.mark.parametrize("name", ["openvino", "onnxruntime"])
def test_zero_copy_run_reads_reused_buffers_and_keeps_outputs(odd, name) -> None:
    # The zero-copy paths bind the caller's arrays in place: a buffer refilled between calls
    # (as a pipeline reuses one) must be read afresh, outputs must not alias the next run's,
    # and a wrong dtype is converted, not misread.
    backend = load_backend(odd["onnx"], Format.ONNX, name=name,
                           options=BackendOptions(threads=1))
    inputs = _inputs()
    first = [o.copy() for o in backend.run(inputs)]
    kept = backend.run(inputs)
    inputs[0][:] = 0.25  # same array object, new content
    refilled = backend.run(inputs)
    fresh = backend.run([np.full_like(inputs[0], 0.25), *inputs[1:]])
    assert any(not np.allclose(a, b) for a, b in zip(first, refilled, strict=True))
    for a, b in zip(refilled, fresh, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(first, kept, strict=True):  # the later runs did not overwrite these
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    if name == "openvino":
        as_f64 = backend.run([inputs[0].astype(np.float64), *inputs[1:]])
        for a, b in zip(refilled, as_f64, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_openvino_bf16_is_reported_when_asked(odd) -> None:
    ov = load_backend(odd["xml"], Format.OPENVINO,
                      options=BackendOptions(extra={"precision": "bf16"}))
    # Either bf16 (the CPU has it) or f32 (it does not): never silently something else.
    assert ov.inference_precision in ("bf16", "f32")


def test_openvino_missing_npu_is_an_error(odd) -> None:
    with pytest.raises(EdgekitError, match="NPU.*not available"):
        load_backend(odd["xml"], Format.OPENVINO, options=BackendOptions(device="npu"))


def test_openvino_fallback_is_explicit_and_visible(odd, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="edgekit"):
        ov = load_backend(odd["xml"], Format.OPENVINO,
                          options=BackendOptions(device="npu", extra={"fallback": ["cpu"]}))
    assert "falling back to CPU" in caplog.text
    assert ov.executed_on == "CPU"


def test_openvino_auto_reports_what_really_ran(odd, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="edgekit"):
        ov = load_backend(odd["xml"], Format.OPENVINO, options=BackendOptions(
            device="auto:npu,cpu", extra={"shapes": {"image": [1, 3, 8, 8], "ids": [2]}}))
    ov.run([np.ones((1, 3, 8, 8), np.float32), np.ones(1, np.float32), np.ones(2, np.int64)])
    assert "NPU" not in ov.executed_on and "CPU" in ov.executed_on
    assert "missing" in caplog.text


def test_openvino_cache_dir_holds_compiled_blobs(odd, tmp_path) -> None:
    cache = tmp_path / "blobs"
    load_backend(odd["xml"], Format.OPENVINO, options=BackendOptions(extra={"cache_dir": cache}))
    assert any(cache.iterdir())


def test_openvino_unreadable_file(tmp_path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<net>not a model")
    with pytest.raises(ModelError, match="OpenVINO cannot read"):
        load_backend(bad, Format.OPENVINO)


def test_litert_two_inputs_dynamic_batch_and_int(tmp_path) -> None:
    backend = load_backend(make_two_input_tflite(tmp_path / "two.tflite"), Format.TFLITE,
                           options=BackendOptions(threads=2))
    assert [i.shape for i in backend.inputs] == [(None, 8, 8, 3), (1, 4)]
    assert backend.inputs[1].dtype == np.int32
    image = np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)
    doubled, ids = backend.run([image, np.array([[1, 2, 3, 4]], np.int32)])
    np.testing.assert_allclose(doubled, image * 2, rtol=1e-6)
    np.testing.assert_array_equal(ids, [[2, 4, 6, 8]])
    assert backend.executed_on == "CPU (XNNPACK)"
    assert backend.versions() == {"ai-edge-litert": backend.versions()["ai-edge-litert"]}


def test_litert_int8_model_takes_and_returns_float(tmp_path) -> None:
    backend = load_backend(make_int8_tflite(tmp_path / "q.tflite"), Format.TFLITE)
    q_in, q_out = backend.input_quantization[0], backend.output_quantization[0]
    assert (q_in.scale, q_in.zero_point) == (pytest.approx(INT8_IN[0]), INT8_IN[1])
    assert (q_out.scale, q_out.zero_point) == (pytest.approx(INT8_OUT[0]), INT8_OUT[1])
    assert isinstance(q_in, Quantization)
    assert backend.inputs[0].dtype == np.float32 and backend.outputs[0].dtype == np.float32
    x = np.array([[0.1, 0.5, -0.2, 1.0]], np.float32)
    (y,) = backend.run([x])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 2 * x, atol=INT8_IN[0] * 2 + INT8_OUT[0])


def test_litert_transposes_nchw_callers_for_nhwc_models(tmp_path) -> None:
    path = make_nhwc_detector_tflite(tmp_path / "det.tflite", boxes=[(10, 12, 8, 6, 1, 0.9)])
    backend = load_backend(path, Format.TFLITE, options=BackendOptions(extra={"layout": "nchw"}))
    assert backend.inputs[0].shape == (1, 32, 32, 3)  # the real shape of the bare file
    (out,) = backend.run([np.ones((1, 3, 32, 32), np.float32)])
    np.testing.assert_allclose(out[0, :, 0], [10, 12, 8, 6, 0, 0.9, 0], rtol=1e-6)


def test_litert_bad_file(tmp_path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"definitely not a flatbuffer")
    with pytest.raises(ModelError, match="cannot load"):
        load_backend(bad, Format.TFLITE)


def test_litert_numpy_too_new_message(tmp_path) -> None:
    # tflite_runtime 2.14 with numpy 2 fails inside Interpreter() with this exact text.
    backend = load_backend(make_int8_tflite(tmp_path / "q.tflite"), Format.TFLITE)
    error = LiteRtBackend._load_error(backend, ImportError("_ARRAY_API not found"))
    assert isinstance(error, MissingDependencyError)
    assert "numpy" in error.message and "ai-edge-litert" in str(error)

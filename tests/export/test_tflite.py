"""PyTorch -> .tflite at fp32, fp16 and INT8, run by the real LiteRT backend.

A tiny real detector (three strided convs, a 1x1 head and a ``Decode`` tail that mixes pixel
boxes with sigmoid scores in one [1, 4 + nc, N] tensor, the case INT8 gets wrong) is converted
once per precision at imgsz 64 by litert-torch; outputs are compared with torch on synthetic
road scenes preprocessed exactly as the Detector does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from edgekit.export.jobs import ExportedFile, ExportJob  # noqa: E402
from edgekit.export.loaders import LoadedModel, load_model  # noqa: E402
from edgekit.export.tflite import export_tflite, float_tail_types  # noqa: E402
from helpers import make_yolo_onnx  # noqa: E402
from torch import nn  # noqa: E402

from edgekit.backends import BackendOptions, load_backend  # noqa: E402
from edgekit.bundle import Format, InputSpec, Precision  # noqa: E402
from edgekit.data.synth import render_scene  # noqa: E402
from edgekit.errors import DatasetError, ModelError  # noqa: E402
from edgekit.preprocess import preprocess  # noqa: E402

# torch.export's own deprecation notice, raised inside litert-torch's tracing.
pytestmark = pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)`:FutureWarning")

IMGSZ = 64
CLASSES = 3
STRIDE = 8
SPEC = InputSpec(shape=(1, 3, IMGSZ, IMGSZ))


class Decode(nn.Module):
    """Raw maps -> cx, cy, w, h in pixels and sigmoid scores, like YoloLite's tail."""

    def __init__(self) -> None:
        super().__init__()
        n = IMGSZ // STRIDE
        c = (torch.arange(n, dtype=torch.float32) + 0.5) * STRIDE
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        self.register_buffer("anchors", torch.stack((xx.reshape(-1), yy.reshape(-1)))[None])

    def forward(self, box: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        side = torch.sigmoid(box) * 4.0
        d = side * side * STRIDE
        lt, rb = d[:, :2], d[:, 2:]
        return torch.cat((self.anchors + (rb - lt) * 0.5, lt + rb, torch.sigmoid(cls)), 1)


class TinyDetector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.SiLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(32, 64, 3, 2, 1), nn.SiLU())
        self.head = nn.Conv2d(64, 4 + CLASSES, 1)
        self.decode = Decode()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(x)).flatten(2)
        return self.decode(y[:, :4], y[:, 4:])


def _scenes(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [preprocess(render_scene(rng, width=160, height=120)[0], SPEC)[0]
            for _ in range(count)]


def _job(model: LoadedModel, precision: Precision, workdir: Path, **kwargs) -> ExportJob:
    fields = dict(model=model, onnx_fp32=workdir / "unused.onnx", spec=SPEC,
                  labels=[f"c{i}" for i in range(CLASSES)], precision=precision,
                  workdir=workdir, calibration=None)
    return ExportJob(**{**fields, **kwargs})


def _run(exported: ExportedFile, tensors: list[np.ndarray]) -> np.ndarray:
    """Runs NCHW tensors through edgekit's LiteRT backend as a bundle runner would."""
    backend = load_backend(exported.path, Format.TFLITE, options=BackendOptions(
        threads=1, extra={"layout": "nchw", "model_layout": exported.details["layout"]}))
    return np.concatenate([backend.run([t])[0] for t in tensors])


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    torch.manual_seed(0)
    return load_model(TinyDetector().eval())


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    return _scenes(6, seed=99)


@pytest.fixture(scope="module")
def reference(model: LoadedModel, scenes: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model.module(torch.from_numpy(t)).numpy() for t in scenes])


@pytest.fixture(scope="module")
def exported(model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[Precision, ExportedFile]:
    calibration = _scenes(16, seed=7)
    files = {}
    for precision in Precision:
        work = tmp_path_factory.mktemp(f"tflite-{precision.value}")
        files[precision] = export_tflite(_job(
            model, precision, work,
            calibration=calibration if precision is Precision.INT8 else None))
    return files


def test_fp32_matches_torch_through_the_litert_backend(exported, scenes, reference) -> None:
    fp32 = exported[Precision.FP32]
    assert fp32.path.is_file() and fp32.path.suffix == ".tflite"
    details = fp32.details
    assert details["layout"] == "nhwc" and details["binding"] == "index"
    assert details["inputs"][0]["shape"] == [1, IMGSZ, IMGSZ, 3]
    assert details["inputs"][0]["dtype"] == "float32" and details["inputs"][0]["scale"] is None
    assert details["outputs"][0]["shape"] == [1, 4 + CLASSES, (IMGSZ // STRIDE) ** 2]
    assert {"litert-torch", "torch", "ai-edge-litert"} <= set(details["tools"])
    got = _run(fp32, scenes)
    # Boxes are in input pixels (0..64): float32 rounding only.
    assert np.abs(got - reference).max() < 1e-3
    assert details["parity"]["max_abs_diff"] < 1e-3


def test_fp16_halves_the_file_and_stays_close(exported, scenes, reference) -> None:
    fp16, fp32 = exported[Precision.FP16], exported[Precision.FP32]
    assert "float_casting" in fp16.details["method"]
    assert fp16.path.stat().st_size < 0.75 * fp32.path.stat().st_size
    got = _run(fp16, scenes)
    assert np.abs(got[:, 4:] - reference[:, 4:]).max() < 0.01  # scores
    assert np.abs(got[:, :4] - reference[:, :4]).max() < 0.5  # boxes, pixels


def test_int8_keeps_the_decode_tail_float_and_agrees_with_fp32(exported, scenes,
                                                               reference) -> None:
    int8 = exported[Precision.INT8]
    details = int8.details
    assert details["float_tail"] and details["float_tail"][0].endswith(".Decode")
    assert details["calibration_samples"] == 16 and details["float_tensors"] > 0
    (inp,), (out,) = details["inputs"], details["outputs"]
    # Full-integer input (images in 0..1 -> int8), float output from the float tail.
    assert inp["dtype"] == "int8" and 0 < inp["scale"] < 0.01 and inp["zero_point"] == -128
    assert out["dtype"] == "float32" and out["scale"] is None
    assert int8.path.stat().st_size < exported[Precision.FP32].path.stat().st_size
    got = _run(int8, scenes)
    scores, want = got[:, 4:], reference[:, 4:]
    assert np.abs(scores - want).max() < 0.1
    assert np.abs(scores - want).mean() < 0.02
    # Decisions: the best class per anchor agrees almost everywhere.
    assert (scores.argmax(1) == want.argmax(1)).mean() > 0.9
    assert np.abs(got[:, :4] - reference[:, :4]).max() < 0.1 * IMGSZ


def test_int8_dynamic_activations_keeps_float_io_and_int8_weights(
        model: LoadedModel, exported, scenes, reference, tmp_path: Path) -> None:
    dynamic = export_tflite(_job(model, Precision.INT8, tmp_path, calibration=_scenes(4, 3)),
                            activations="dynamic")
    assert "dynamic" in dynamic.details["method"]
    (inp,), (out,) = dynamic.details["inputs"], dynamic.details["outputs"]
    assert inp["dtype"] == out["dtype"] == "float32"  # the runtime quantizes inside
    assert dynamic.path.stat().st_size < 0.5 * exported[Precision.FP32].path.stat().st_size
    got, static = _run(dynamic, scenes), _run(exported[Precision.INT8], scenes)
    # Ranges fitted to each input: closer to fp32 than calibrated fixed ranges.
    assert (np.abs(got[:, 4:] - reference[:, 4:]).mean()
            < np.abs(static[:, 4:] - reference[:, 4:]).mean())
    with pytest.raises(ModelError, match="activations 'fixed'"):
        export_tflite(_job(model, Precision.INT8, tmp_path, calibration=_scenes(4, 3)),
                      activations="fixed")


def test_int8_needs_calibration(model: LoadedModel, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="calibration"):
        export_tflite(_job(model, Precision.INT8, tmp_path))
    wrong = [np.zeros((1, 3, 32, 32), np.float32)]
    with pytest.raises(DatasetError, match=r"\[1, 3, 64, 64\]"):
        export_tflite(_job(model, Precision.INT8, tmp_path, calibration=wrong))


def test_float_tail_is_found_by_class_name(model: LoadedModel) -> None:
    from edgekit.export.models.yolo_lite import YoloLite

    assert float_tail_types(model.module) == [f"{Decode.__module__}.Decode"]
    assert float_tail_types(YoloLite(2, imgsz=64)) == ["edgekit.export.models.yolo_lite.Decode"]
    assert float_tail_types(nn.Sequential(nn.Conv2d(3, 3, 1))) == []


def test_int8_without_the_float_tail_records_output_quantization(
        model: LoadedModel, scenes, reference, tmp_path: Path) -> None:
    exported = export_tflite(_job(model, Precision.INT8, tmp_path, calibration=_scenes(8, 3),
                                  keep_float_tail=False))
    assert exported.details["float_tail"] == [] and exported.details["float_tensors"] == 0
    (out,) = exported.details["outputs"]
    # The whole graph is int8, output included: its scale spans pixel boxes, so the
    # 0..1 scores get only a few levels (why the tail is kept float by default).
    assert out["dtype"] == "int8" and out["scale"] > 0.05 and out["zero_point"] is not None
    got = _run(exported, scenes)
    levels = np.unique(np.round(got[:, 4:] / out["scale"]))
    assert len(levels) <= 1.0 / out["scale"] + 2


class _CumProd(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumprod(x, 1).flatten(2)


def test_an_op_the_converter_cannot_take_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        export_tflite(_job(load_model(_CumProd().eval()), Precision.FP32, tmp_path))
    message = str(info.value)
    assert "aten.cumprod" in message and "_CumProd" in message


def test_a_file_litert_cannot_load_is_a_model_error(tmp_path: Path) -> None:
    from edgekit.export.tflite import read_tensors

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3" + bytes(64))
    with pytest.raises(ModelError, match="LiteRT cannot load the TFLite file converted from src"):
        read_tensors(broken, source="src")


# --- ONNX-only sources (onnx2torch, onnx2tf) ----------------------------------------------


@pytest.fixture
def onnx_job(tmp_path: Path):
    def make(precision: Precision, calibration=None) -> ExportJob:
        onnx_file = make_yolo_onnx(tmp_path / "tiny.onnx", imgsz=IMGSZ)
        loaded = load_model(onnx_file)
        assert loaded.module is None
        return ExportJob(model=loaded, onnx_fp32=onnx_file, spec=SPEC, labels=["a"],
                         precision=precision, workdir=tmp_path / "work",
                         calibration=calibration)
    return make


def _onnx_with_op(path: Path, op_type: str) -> Path:
    """A one-conv ONNX model whose output goes through ``op_type`` (one input, one output)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["c"], strides=[8, 8], pads=[1, 1, 1, 1]),
         helper.make_node("Flatten", ["c"], ["f"]),
         helper.make_node(op_type, ["f"], ["output0"])],
        "odd", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, IMGSZ, IMGSZ])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 * (IMGSZ // 8) ** 2])],
        [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="TensorFlow is installed: onnx2tf would take the op instead")
def test_an_onnx_op_onnx2torch_lacks_is_named_with_the_onnx2tf_fallback(tmp_path: Path) -> None:
    if importlib.util.find_spec("onnx2torch") is None:
        pytest.skip("onnx2torch is not installed")
    source = _onnx_with_op(tmp_path / "hardmax.onnx", "Hardmax")
    job = ExportJob(model=load_model(source), onnx_fp32=source, spec=SPEC, labels=["a"],
                    precision=Precision.FP32, workdir=tmp_path / "work", calibration=None)
    with pytest.raises(ModelError) as info:
        export_tflite(job)
    message, hint = str(info.value), info.value.hint
    assert "onnx2torch cannot convert the op Hardmax" in message and "hardmax.onnx" in message
    assert "onnx2tf" in hint


def test_a_two_input_onnx_is_refused_by_name(tmp_path: Path) -> None:
    if importlib.util.find_spec("onnx2torch") is None:
        pytest.skip("onnx2torch is not installed")
    from head_models import make_head_onnx

    source = make_head_onnx("rtdetr", tmp_path / "rtdetr.onnx")
    job = ExportJob(model=load_model(source), onnx_fp32=source, spec=SPEC, labels=["a"],
                    precision=Precision.FP32, workdir=tmp_path / "work", calibration=None)
    with pytest.raises(ModelError, match="2 inputs \\(images, orig_target_sizes\\)"):
        export_tflite(job)


def test_onnx2tf_gets_a_copy_calibration_and_the_offline_sample(onnx_job) -> None:
    from edgekit.export.onnx2tf_convert import (
        CALIBRATION_SAMPLE,
        convert_kwargs,
        output_file,
        prepare_workdir,
    )

    calibration = _scenes(3, seed=1)
    job = onnx_job(Precision.INT8, calibration)
    original = job.model.onnx_path.read_bytes()
    copy, npy = prepare_workdir(job)
    assert copy.parent == job.workdir and copy.read_bytes() == original
    sample = np.load(job.workdir / CALIBRATION_SAMPLE)
    assert sample.shape == (20, 128, 128, 3) and sample.dtype == np.float32
    data = np.load(npy)
    assert data.shape == (3, IMGSZ, IMGSZ, 3)  # NHWC, as onnx2tf's TF graph takes it
    np.testing.assert_array_equal(data[1], calibration[1][0].transpose(1, 2, 0))
    kwargs = convert_kwargs(job, copy, npy)
    assert kwargs["input_onnx_file_path"] == str(copy)
    assert kwargs["output_integer_quantized_tflite"] is True
    assert kwargs["custom_input_op_name_np_data_path"][0][:2] == ["images", str(npy)]
    assert kwargs["overwrite_input_shape"] == [f"images:1,3,{IMGSZ},{IMGSZ}"]
    out = Path(kwargs["output_folder_path"])
    assert output_file(out, copy, Precision.INT8).name == "model_integer_quant.tflite"
    assert output_file(out, copy, Precision.FP16).name == "model_float16.tflite"
    fp32 = convert_kwargs(onnx_job(Precision.FP32), copy, None)
    assert "custom_input_op_name_np_data_path" not in fp32

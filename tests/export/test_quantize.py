"""ONNX fp16/INT8 and OpenVINO IR fp32/fp16/INT8 from a real (random-weight) YoloLite at 64 px.

Random weights say nothing about accuracy (test_gate.py covers the gate); these tests check
what each exporter promises about the files: float32 IO, QDQ schemes, the decode tail kept in
float, static shapes, and outputs that stay close to fp32.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgekit.export import load_model  # noqa: E402
from edgekit.export.jobs import ExportJob  # noqa: E402
from edgekit.export.onnx import export_onnx  # noqa: E402
from edgekit.export.parity import sample_inputs  # noqa: E402
from edgekit.export.quantize_onnx import (  # noqa: E402
    WEIGHT_OPS,
    Placement,
    QuantScheme,
    default_scheme,
    export_onnx_artifact,
    float_tail,
)

from edgekit.bundle import InputSpec, Precision  # noqa: E402
from edgekit.errors import ModelError  # noqa: E402

IMGSZ = 64
SPEC = InputSpec(shape=(1, 3, IMGSZ, IMGSZ))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    from edgekit.export.models.yolo_lite import YoloLite

    torch.manual_seed(0)
    loaded = load_model(YoloLite(7, imgsz=IMGSZ).eval())
    root = tmp_path_factory.mktemp("quant")
    path = export_onnx(loaded, root / "model.onnx", imgsz=IMGSZ)
    return loaded, path, sample_inputs(SPEC, seeds=range(6))


def _job(source: tuple, tmp_path: Path, precision: Precision, **kw) -> ExportJob:
    loaded, path, calib = source
    return ExportJob(model=loaded, onnx_fp32=path, spec=SPEC, labels=[str(i) for i in range(7)],
                     precision=precision, workdir=tmp_path / precision.value,
                     calibration=calib if precision is Precision.INT8 else None, **kw)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]


def _quantized_tensors(proto: onnx.ModelProto) -> dict[str, int]:
    """Tensor name -> zero-point element type, for every QuantizeLinear in the graph."""
    inits = {i.name: i for i in proto.graph.initializer}
    return {n.input[0]: inits[n.input[2]].data_type for n in proto.graph.node
            if n.op_type == "QuantizeLinear"}


def test_float_tail_is_the_decode_after_the_last_conv(source: tuple) -> None:
    tail = float_tail(source[1])
    assert any("decode" in name for name in tail)
    ops = {n.name: n.op_type for n in onnx.load(str(source[1])).graph.node}
    assert not {ops[name] for name in tail} & {"Conv", "MatMul", "Gemm"}
    assert ops[tail[0]] == "Concat"  # the node producing the output comes first


def test_fp16_keeps_float32_io_and_the_tail_in_float(source: tuple, tmp_path: Path) -> None:
    exported = export_onnx_artifact(_job(source, tmp_path, Precision.FP16))
    proto = onnx.load(str(exported.path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    x = source[2][0]
    np.testing.assert_allclose(_run(exported.path, x), _run(source[1], x), atol=0.05)
    assert exported.details["float_tail"] and exported.details["io_dtype"] == "float32"


@pytest.mark.parametrize("scheme, zero_point_type", [
    (QuantScheme.U8S8, onnx.TensorProto.UINT8), (QuantScheme.S8S8, onnx.TensorProto.INT8)])
def test_int8_qdq_scheme_and_float_tail(source: tuple, tmp_path: Path, scheme: QuantScheme,
                                        zero_point_type: int) -> None:
    exported = export_onnx_artifact(_job(source, tmp_path, Precision.INT8), scheme=scheme)
    assert exported.details["scheme"] == f"QDQ {scheme.value.upper()}"
    proto = onnx.load(str(exported.path))
    quantized = _quantized_tensors(proto)
    assert quantized and set(quantized.values()) == {zero_point_type}
    weights = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"
               and n.input[0].endswith("_quantized")]
    assert weights  # per-channel int8 weights
    # No tensor of the decode tail is quantized: boxes in pixels and 0..1 scores stay float.
    tail_inputs = {i for n in proto.graph.node if n.name in set(float_tail(source[1]))
                   for i in n.input}
    assert not tail_inputs & set(quantized)
    assert _run(exported.path, source[2][0]).shape == _run(source[1], source[2][0]).shape


def test_conv_inputs_placement_quantizes_only_what_weighted_ops_read(source: tuple,
                                                                    tmp_path: Path) -> None:
    job = _job(source, tmp_path, Precision.INT8)
    everywhere = export_onnx_artifact(job)
    placed = export_onnx_artifact(replace(job, workdir=tmp_path / "placed"),
                                  placement=Placement.CONV_INPUTS)
    assert placed.details["placement"] == "conv-inputs"
    assert everywhere.details["placement"] == "all"
    proto = onnx.load(str(placed.path))
    readers: dict[str, set[str]] = {}
    for node in proto.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    dequantized = [n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    # Every dequantized tensor feeds a conv; SiLU's Sigmoid/Mul and the concats read floats.
    assert dequantized and all(readers[t] & WEIGHT_OPS for t in dequantized)
    activations = set(_quantized_tensors(proto))
    assert activations and activations < set(_quantized_tensors(onnx.load(str(everywhere.path))))
    # Fewer rounding points: closer to fp32 than the everywhere placement on the same inputs.
    x = np.concatenate(source[2][:4])
    ref = np.concatenate([_run(source[1], t) for t in source[2][:4]])
    err = {name: np.abs(np.concatenate([_run(f.path, t) for t in source[2][:4]]) - ref).mean()
           for name, f in (("all", everywhere), ("conv", placed))}
    assert x.shape[0] == 4 and err["conv"] < err["all"]


def test_unknown_placement_is_refused(source: tuple, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="everywhere.*not known") as info:
        export_onnx_artifact(_job(source, tmp_path, Precision.INT8), placement="everywhere")
    assert "conv-inputs" in info.value.hint


def test_int8_without_the_float_tail_quantizes_the_decode(source: tuple, tmp_path: Path) -> None:
    exported = export_onnx_artifact(_job(source, tmp_path, Precision.INT8,
                                         keep_float_tail=False))
    quantized = set(_quantized_tensors(onnx.load(str(exported.path))))
    assert any("decode" in name for name in quantized)
    assert exported.details["float_tail"] is False


def test_int8_needs_calibration(source: tuple, tmp_path: Path) -> None:
    job = _job(source, tmp_path, Precision.FP16)
    with pytest.raises(ModelError, match="needs calibration"):
        export_onnx_artifact(replace(job, precision=Precision.INT8))


def test_scheme_follows_the_machine() -> None:
    assert default_scheme("x86_64") is QuantScheme.U8S8
    assert default_scheme("aarch64") is QuantScheme.S8S8


def test_ranked_layers_name_fp32_nodes_and_can_be_excluded(source: tuple,
                                                          tmp_path: Path) -> None:
    from edgekit.export.sensitivity import rank_layers

    job = _job(source, tmp_path, Precision.INT8)
    first = export_onnx_artifact(job)
    ranking = rank_layers(source[1], first.path, source[2], input_name="images",
                          workdir=tmp_path, images=3)
    nodes = {n.name: n.op_type for n in onnx.load(str(source[1])).graph.node}
    # Every weighted layer with a quantized input is ranked, noisiest first, by a finite,
    # positive noise-to-signal ratio (int8 rounding is never exact on random weights).
    assert ranking and all(nodes[name] in WEIGHT_OPS for name, _ in ranking)
    scores = [score for _, score in ranking]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    worst = [name for name, _ in ranking[:3]]
    again = export_onnx_artifact(job, exclude=worst)
    assert again.details["excluded_nodes"] == sorted(worst)
    proto = onnx.load(str(again.path))
    excluded_inputs = {i for n in proto.graph.node if n.name in set(worst) for i in n.input}
    assert not excluded_inputs & set(_quantized_tensors(proto))


def test_float_counts_cover_noise_shares_fewest_first() -> None:
    from edgekit.export.sensitivity import float_counts

    # One layer holds most of the noise: the first candidate keeps just it.
    assert float_counts([("a", 8.0), ("b", 1.0), ("c", 0.5), ("d", 0.5)]) == [1]
    assert float_counts([("a", 4.0), ("b", 4.0), ("c", 1.0), ("d", 1.0)]) == [1, 2]
    # Spread evenly: a quarter, a half, three quarters, capped at half the layers.
    even = [(str(i), 1.0) for i in range(8)]
    assert float_counts(even) == [2, 4]
    assert float_counts(even, cap=1.0) == [2, 4, 6]


# --- OpenVINO IR -------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", list(Precision))
def test_openvino_ir_at_each_precision(source: tuple, tmp_path: Path,
                                       precision: Precision) -> None:
    ov = pytest.importorskip("openvino")
    if precision is Precision.INT8:
        pytest.importorskip("nncf")
    from edgekit.export.openvino_ir import export_openvino, float_tail_ov

    exported = export_openvino(_job(source, tmp_path, precision))
    assert exported.path.suffix == ".xml" and exported.companions[0].is_file()
    model = ov.Core().read_model(str(exported.path))
    assert [d.get_length() for d in model.inputs[0].get_partial_shape()] == [1, 3, IMGSZ, IMGSZ]
    types = {op.get_type_name() for op in model.get_ops()}
    consts = {op.get_element_type().get_type_name() for op in model.get_ops()
              if op.get_type_name() == "Constant"}
    assert ("f16" in consts) is (precision is Precision.FP16)
    assert ("FakeQuantize" in types) is (precision is Precision.INT8)
    if precision is Precision.INT8:
        # Nothing in the decode tail is fed by a FakeQuantize.
        tail = set(float_tail_ov(model))
        fed = {op.get_friendly_name() for op in model.get_ops()
               if op.get_friendly_name() in tail
               and any(v.get_node().get_type_name() == "FakeQuantize" for v in op.input_values())}
        assert tail and not fed
        assert exported.details["float_layers"] == 0
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = source[2][1]
    tol = {Precision.FP32: 1e-3, Precision.FP16: 0.05, Precision.INT8: 2.0}[precision]
    np.testing.assert_allclose(compiled(x)[0], _run(source[1], x), atol=tol)


def test_openvino_int8_keeps_excluded_onnx_nodes_float(source: tuple, tmp_path: Path) -> None:
    ov = pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from edgekit.export.openvino_ir import export_openvino

    convs = [n.name for n in onnx.load(str(source[1])).graph.node if n.op_type == "Conv"][:3]
    exported = export_openvino(_job(source, tmp_path, Precision.INT8), exclude=convs)
    model = ov.Core().read_model(str(exported.path))
    # The ONNX frontend names a conv with a bias '<node>/WithoutBiases': found all the same.
    kept = {op.get_friendly_name(): op for op in model.get_ops()
            if op.get_type_name() == "Convolution"
            and op.get_friendly_name().rsplit("/", 1)[0] in set(convs)}
    assert len(kept) == 3 and exported.details["float_layers"] == 3
    assert exported.details["excluded_nodes"] == sorted(convs)
    for op in kept.values():
        assert all(v.get_node().get_type_name() != "FakeQuantize" for v in op.input_values())
    quantized = [op for op in model.get_ops() if op.get_type_name() == "Convolution"
                 and any(v.get_node().get_type_name() == "FakeQuantize"
                         for v in op.input_values())]
    assert quantized  # the others stay int8


def test_openvino_export_declines_telemetry(source: tuple, tmp_path: Path) -> None:
    checker = pytest.importorskip("openvino_telemetry.utils.opt_in_checker")
    from edgekit.export.openvino_ir import export_openvino

    export_openvino(_job(source, tmp_path, Precision.FP32))
    # No consent file needed: nothing is sent, so nothing forks to send it.
    assert checker.OptInChecker().check(False) is checker.ConsentCheckResult.DECLINED

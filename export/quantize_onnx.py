"""ONNX artifacts at fp32, fp16 and INT8 (static QDQ), from the fp32 ONNX export.

- fp16: onnxruntime's float16 converter with float32 inputs/outputs, so every caller keeps
  feeding the float32 tensor from :func:`edgekit.preprocess.preprocess`.
- INT8: ``onnxruntime.quantization.quantize_static`` in QDQ format, calibrated on the job's
  preprocessed tensors. The scheme follows the target: U8S8 (uint8 activations, int8 weights)
  on x86, where S8S8 was slower than fp32; S8S8 is what TensorRT and Arm kernels want
  (shared/TOOLCHAIN.md). TOOLCHAIN's "U8S8 about 2x fp32" does not hold for the sample
  detector: profiled per op at 2 threads, its 57 QLinearConv take 1.74 ms against 1.94 ms
  for fp32 Conv (small channel counts, where ONNX Runtime's blocked fp32 kernels are already
  fast), and each SiLU becomes QLinearSigmoid + QLinearMul (1.39 ms in all) where fp32 runs
  one fused QuickGelu (0.67 ms): INT8 ends up as fast as fp32, not faster.
- The detection head's decode/concat tail stays float at both reduced precisions: one INT8
  tensor mixing pixel boxes with 0..1 scores destroyed the scores (decisions agreed 46% of
  the time, TOOLCHAIN.md).
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import Format, Precision
from edgekit.errors import ModelError, require

from .batch import pin_onnx
from .jobs import ExportedFile, Exporter, ExportJob, Fallback, GateFailure
from .loaders import first_line, quiet_logger, tool_versions

__all__ = ["QuantScheme", "Placement", "default_scheme", "export_onnx_artifact", "float_tail",
           "weighted_inputs_only", "WEIGHT_OPS", "EXPORTER"]

_TOOLS = ("onnxruntime",)  # its quantizer and fp16 converter, recorded in provenance
# Ops that carry weights: the float tail is everything between the last of them and the output.
WEIGHT_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


class QuantScheme(str, Enum):
    """INT8 activation/weight types."""

    U8S8 = "u8s8"  # x86 (VNNI kernels take uint8 x int8)
    S8S8 = "s8s8"  # TensorRT, Arm

    def __str__(self) -> str:
        return self.value


class Placement(str, Enum):
    """Where the INT8 quantize/dequantize pairs go."""

    # Every tensor onnxruntime's quantizer can quantize: the fastest ONNX Runtime CPU graph
    # (QLinearConv, QLinearSigmoid, QLinearMul) and the most rounding, three points per SiLU.
    ALL = "all"
    # Only the inputs (and weights) of weighted ops; everything else (conv outputs, SiLU,
    # concat, add) stays float. This is the placement NVIDIA's TensorRT quantization toolkit uses
    # (TensorRT fuses Conv+activation itself). On the sample detector it turned a -1.06 point
    # drop into -0.46, but ONNX Runtime on x86 runs each conv as dequantize + float conv
    # (6.4 ms vs 2.8 ms fp32): the gate's fallback, measured like any artifact.
    CONV_INPUTS = "conv-inputs"

    def __str__(self) -> str:
        return self.value


def default_scheme(machine: str | None = None) -> QuantScheme:
    """U8S8 on x86, S8S8 elsewhere (Arm boards, Jetson)."""
    arch = (machine or platform.machine()).lower()
    return QuantScheme.U8S8 if arch in ("x86_64", "amd64", "i386", "i686") else QuantScheme.S8S8


def export_onnx_artifact(job: ExportJob, *, scheme: QuantScheme | str | None = None,
                         exclude: Iterable[str] = (),
                         placement: Placement | str = Placement.ALL) -> ExportedFile:
    """Writes the job's ONNX artifact at its precision.

    Args:
        job: The artifact to produce.
        scheme: INT8 scheme; default :func:`default_scheme` for this machine.
        exclude: Further node names to keep in float (the gate's mixed-precision fallback).
        placement: Where INT8 quantize/dequantize pairs go (see :class:`Placement`).

    Returns:
        The file, with details: scheme, float nodes, tool versions.

    Raises:
        ModelError: onnxruntime's quantizer or the fp16 converter cannot take the model.
    """
    target = job.target(Format.ONNX)
    job.workdir.mkdir(parents=True, exist_ok=True)
    if job.precision is Precision.FP32:
        shutil.copyfile(job.onnx_fp32, target)
        return ExportedFile(path=target, details={"layout": "nchw"})
    tail = float_tail(job.onnx_fp32) if job.keep_float_tail else []
    floats = sorted(set(tail) | set(exclude))
    if job.precision is Precision.FP16:
        _to_fp16(job.onnx_fp32, target, floats)
        return ExportedFile(path=target, details={
            "layout": "nchw", "io_dtype": "float32", "float_nodes": len(floats),
            "float_tail": bool(tail), "tools": tool_versions(*_TOOLS)})
    scheme = QuantScheme(str(scheme or default_scheme()))
    if str(placement) not in {p.value for p in Placement}:
        raise ModelError(f"INT8 placement '{placement}' is not known.",
                         hint=f"Use one of: {', '.join(p.value for p in Placement)}.")
    placement = Placement(str(placement))
    _to_int8(job, target, scheme, floats)
    if placement is Placement.CONV_INPUTS:
        weighted_inputs_only(target, target)
    return ExportedFile(path=target, details={
        "layout": "nchw", "scheme": f"QDQ {scheme.value.upper()}", "per_channel": True,
        "placement": placement.value,
        "calibration_images": len(job.calibration or ()), "float_tail": bool(tail),
        "excluded_nodes": sorted(set(exclude)), "float_nodes": len(floats),
        "tools": tool_versions(*_TOOLS)})


def float_tail(path: str | Path) -> list[str]:
    """Names of the nodes between the last weighted op (Conv, Gemm, MatMul) and the output.

    For a YOLOv8-style head that is the per-level reshapes, their concat and the box decode:
    the part that mixes pixel-scale boxes with 0..1 scores.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    tail, stack, seen = [], [o.name for o in graph.output], set()
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen or node.op_type in WEIGHT_OPS:
            continue
        seen.add(node.name)
        tail.append(node.name)
        stack.extend(node.input)
    return tail


def weighted_inputs_only(source: Path, target: Path) -> int:
    """Keeps a QDQ model's quantize/dequantize pairs only in front of weighted ops (Conv,
    Gemm, ...): every other tensor (conv outputs, SiLU, concat, add) goes back to float
    (:attr:`Placement.CONV_INPUTS`).

    Returns:
        How many dequantize nodes were removed.
    """
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    quantized = {node.output[0]: node.input[0] for node in graph.node
                 if node.op_type == "QuantizeLinear"}
    outputs = {o.name for o in graph.output}
    rename = {node.output[0]: quantized[node.input[0]] for node in graph.node
              if node.op_type == "DequantizeLinear" and node.input[0] in quantized
              and node.output[0] not in outputs
              and not consumers.get(node.output[0], set()) & WEIGHT_OPS}
    # A node's first output names it (node names may be empty).
    kept = [node for node in graph.node if node.output[0] not in rename]
    for node in kept:
        node.input[:] = [rename.get(name, name) for name in node.input]
    # A quantizer whose dequantizers were all removed has no reader left: drop it too.
    read = {name for node in kept for name in node.input} | outputs
    kept = [n for n in kept if not (n.op_type == "QuantizeLinear" and n.output[0] not in read)]
    del graph.node[:]
    graph.node.extend(kept)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return len(rename)


def _to_fp16(source: Path, target: Path, floats: list[str]) -> None:
    import onnx

    # onnxruntime's copy of the converter: onnxconverter-common 1.16 refuses a float node
    # that feeds the graph output when IO stays float32 ("The downstream node of the second
    # cast node should be graph output"), which is exactly the kept-float decode tail.
    float16 = require("onnxruntime.transformers.float16", package="onnxruntime",
                      extra="export", purpose="fp16 ONNX export")
    try:
        model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True,
                                                 node_block_list=floats or None)
        _sort_nodes(model.graph)  # the converter appends its input casts at the end
        onnx.checker.check_model(model)
    except Exception as exc:  # the converter raises untyped errors on unsupported graphs
        raise ModelError(f"fp16 conversion of {source.name} failed: {first_line(exc)}",
                         hint="Export fp32 and int8 only, or report the op named above.") \
            from None
    onnx.save(model, str(target))


def _sort_nodes(graph: Any) -> None:
    """Puts nodes in topological order (the ONNX checker requires it)."""
    have = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in have for i in n.input)]
        if not ready:
            raise ModelError("the fp16 graph has a cycle or an undefined input")
        for node in ready:
            have.update(node.output)
        ordered.extend(ready)
        taken = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in taken]
    copies = [type(n)() for n in ordered]
    for copy, node in zip(copies, ordered, strict=True):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over preprocessed tensors."""

    def __init__(self, name: str, tensors: Sequence[np.ndarray]) -> None:
        self.name, self.items = name, iter(tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self.items, None)
        return None if tensor is None else {self.name: tensor}


def _to_int8(job: ExportJob, target: Path, scheme: QuantScheme, floats: list[str]) -> None:
    quant = require("onnxruntime.quantization", package="onnxruntime", extra="export",
                    purpose="INT8 ONNX quantization")
    if not job.calibration:
        raise ModelError(f"INT8 export of {job.onnx_fp32.name} needs calibration images.",
                         hint="Pass calib= (a folder of images, a video or a dataset).")
    activation = quant.QuantType.QUInt8 if scheme is QuantScheme.U8S8 else quant.QuantType.QInt8
    source = _per_channel_opset(job.onnx_fp32, job.workdir)
    try:
        with quiet_logger():
            quant.quantize_static(
                str(source), str(target), _Reader(job.spec.name, job.calibration),
                quant_format=quant.QuantFormat.QDQ, activation_type=activation,
                weight_type=quant.QuantType.QInt8, per_channel=True,
                calibrate_method=quant.CalibrationMethod.MinMax, nodes_to_exclude=floats,
                # Symmetric int8 activations are what TensorRT takes; uint8 keeps its zero.
                extra_options={"ActivationSymmetric": scheme is QuantScheme.S8S8,
                               "WeightSymmetric": True},
            )
    except Exception as exc:  # the quantizer raises untyped errors naming ops
        raise ModelError(f"onnxruntime INT8 quantization of {job.onnx_fp32.name} failed: "
                         f"{first_line(exc)}",
                         hint="Check the op named above is supported by onnxruntime's "
                              "quantizer, or export fp32/fp16 only.") from None


# Per-channel Q/DQ needs DequantizeLinear's ``axis`` (opset 13). onnxruntime's quantizer
# writes it into older graphs all the same, and onnxruntime then refuses the file: seen on
# MediaPipe's BlazeFace converted to ONNX at opset 11 by tflite2onnx.
_PER_CHANNEL_OPSET = 13


def _per_channel_opset(source: Path, workdir: Path) -> Path:
    """``source``, or a copy converted to opset 13 where it is older."""
    import onnx
    from onnx import version_converter

    proto = onnx.load(str(source))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= _PER_CHANNEL_OPSET:
        return source
    try:
        converted = version_converter.convert_version(proto, _PER_CHANNEL_OPSET)
        onnx.checker.check_model(converted, full_check=True)
    except Exception as exc:  # the converter raises untyped errors naming an op
        raise ModelError(
            f"{source.name} is at opset {opset}; per-channel INT8 needs opset "
            f"{_PER_CHANNEL_OPSET}, and onnx's version converter failed: {first_line(exc)}",
            hint=f"Re-export the model at opset {_PER_CHANNEL_OPSET} or newer.") from None
    target = workdir / f"{source.stem}-opset{_PER_CHANNEL_OPSET}.onnx"
    onnx.save(converted, str(target))
    return target


# --- the gate's INT8 fallbacks for ONNX ------------------------------------------------------


def onnx_fallbacks(failure: GateFailure) -> Iterator[Fallback]:
    """``mixed-precision``: the noisiest layers of the export's ranking kept in float
    (``sensitivity.mixed_precision``, ranked on the failing file itself); then
    ``conv-inputs-only``: quantize/dequantize only in front of weighted ops, TensorRT's
    placement (:class:`Placement`).
    """
    from .sensitivity import mixed_precision

    yield from mixed_precision(failure, failure.failing)
    placed = replace(failure.job, workdir=failure.job.workdir / "conv-inputs")
    yield "conv-inputs-only", lambda: failure.export(placed, placement="conv-inputs")


EXPORTER = Exporter(format=Format.ONNX, export=export_onnx_artifact, tools=_TOOLS,
                    fallbacks=onnx_fallbacks, pin_batch=pin_onnx)

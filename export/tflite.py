"""TFLite/LiteRT artifacts: fp32, fp16 and INT8 ``.tflite`` files with NHWC input.

PyTorch models go through ``litert-torch`` (no TensorFlow): the module is wrapped with
``litert_torch.to_channel_last_io`` so the file takes NHWC, TFLite's native layout, and
XNNPACK runs it without a leading transpose. ONNX-only sources (a user's ``.onnx``) are
rebuilt as a torch module by onnx2torch (:mod:`edgekit.export.onnx_torch`, about a second)
and take the same path; onnx2tf (:mod:`edgekit.export.onnx2tf_convert`, TensorFlow, 64 min
per precision on a real YOLOv8 in issue 14) is only the fallback for ops onnx2torch lacks.

litert-torch converts once per export: the fp32 file is kept beside the cells' workdirs and
fp16 and INT8 (and the gate's fallbacks) are derived from it by ai-edge-quantizer.

Precisions (shared/TOOLCHAIN.md has the measurements behind each choice):
    fp32: litert-torch as is.
    fp16: ai-edge-quantizer's FLOAT_CASTING on the fp32 file: fp16 weights, dequantized to
        fp32 at load (half the size, no speed on x86).
    int8: ai-edge-quantizer ``static_wi8_ai8`` (int8 per-channel weights, int8 activations
        from min/max calibration on ``job.calibration``), run on the fp32 file. The detection
        head's decode tail stays float (``job.keep_float_tail``): one INT8 tensor mixing pixel
        boxes with 0..1 scores destroys the scores. litert-torch names each tensor after its
        module path, so the tail's ops are found by class name (``Decode`` and Ultralytics'
        ``Detect``) and excluded with the graph output, the reshape/concat ops feeding it and
        the head's output convs before those. Where no such class exists (every ONNX
        source), the tail is read from the graph: every op between the outputs and the last
        conv/matmul of each path back from them (:func:`graph_tail`), which covers every
        head convention; the report lists those ops (``float_nodes``).

        Not PT2E in torch: measured on the sample detector (320, 100 synthetic scenes), PT2E
        with the ``Decode`` module float scores mAP@0.5:0.95 41.0 simulated in torch (fp32
        41.2) but 27.2 once litert-torch converts the same quantized graph: the class-logit
        concat of the three levels gets the quantization range of one level (zero point 127,
        logits clipped at 0) and PT2E leaves SiLU in float, so it was not faster either. The
        ai-edge-quantizer file, same weights and scenes, scored 40.3 at 1.8x the fp32 speed.

Tensors are bound by index: litert-torch names them ``args_0``/``output_0`` under the
``serving_default`` signature, onnx2tf differently between its float and int8 files. What a
runner needs (layout, each tensor's dtype, scale and zero point read back from the
interpreter) goes into ``ExportedFile.details``, so no runner guesses.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.backends.litert import LiteRtBackend
from edgekit.bundle import Format, Layout, Precision
from edgekit.errors import DatasetError, ModelError, require
from edgekit.native_log import native_stderr_to_log

from .jobs import ExportedFile, Exporter, ExportJob, Fallback, GateFailure
from .loaders import quiet_logger, tool_versions

__all__ = ["export_tflite", "FLOAT_TAIL_CLASSES", "float_tail_types", "read_tensors",
           "EXPORTER", "graph_tail", "float_nodes", "GRAPH_TAIL"]

SIGNATURE = "serving_default"
# Module classes holding a detection head's decode/score tail: edgekit's own YoloLite
# ``Decode`` and Ultralytics' heads (which also hold the head convs: kept float as a whole).
FLOAT_TAIL_CLASSES = frozenset({"Decode", "Detect", "v10Detect"})
# LiteRT's own runtime, as its backend declares it: the preferred one only, since its
# tflite-runtime fallback cannot run beside the export host's numpy 2 (TOOLCHAIN.md).
LITERT = LiteRtBackend.runtimes[0]
_TOOLS = ("litert-torch", "ai-edge-quantizer", LITERT.package, "torch")
_PROBE_SEED = 20261124


def export_tflite(job: ExportJob, *, activations: str = "static") -> ExportedFile:
    """Writes one ``.tflite`` file for ``job.precision`` into ``job.workdir``.

    Args:
        job: What to export. A torch module goes through litert-torch; an ONNX-only source
            first through onnx2torch, or through onnx2tf (the
            ``onnx2tf`` extra, TensorFlow) when onnx2torch lacks one of its ops.
        activations: For INT8: "static" (full integer, activation ranges from calibration)
            or "dynamic" (int8 weights; each activation quantized per inference from its own
            range, the gate's fallback when fixed ranges lose too much).

    Returns:
        The file with details: layout (``nhwc``), signature and binding, dtype/scale/zero
        point of every input and output, the method, the float tail kept, parity with torch
        on a probe input, and tool versions.

    Raises:
        ModelError: A converter cannot take an op of the model (named with the source), or
            the written file does not load in LiteRT.
        DatasetError: INT8 without calibration data, or tensors of the wrong shape.
        MissingDependencyError: litert-torch (or, for ONNX-only inputs, onnx2torch) is not
            installed.
    """
    if activations not in ("static", "dynamic"):
        raise ModelError(f"TFLite INT8 activations '{activations}' is not known.",
                         hint="Use 'static' or 'dynamic'.")
    if job.model.module is None and job.batch != 1:
        raise ModelError(f"TFLite at batch {job.batch} is made from PyTorch models only; "
                         f"{job.model.source} is an ONNX file (converted at batch 1).",
                         hint="Export the PyTorch model, or leave tflite out of --to.")
    check_calibration(job)
    if job.model.module is None:
        converted = _with_torch_module(job)
        if isinstance(converted, ExportedFile):
            return converted
        job = converted
    # Importing litert-torch imports TensorFlow's C++ runtime and torchao, which log notes
    # about oneDNN and missing CUDA kernels at import: noise in the middle of the export's
    # progress, and nothing a user can act on.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_logger("torchao"), quiet_logger("torchao.kernel.intmm"):
        require("litert_torch", package="litert-torch", extra="tflite",
                purpose="exporting .tflite from PyTorch")
    job.workdir.mkdir(parents=True, exist_ok=True)
    target = job.target(Format.TFLITE)
    facts = (_int8_dynamic(job, target) if activations == "dynamic" and
             job.precision is Precision.INT8 else _PRECISIONS[job.precision](job, target))
    details = {"layout": Layout.NHWC.value, "signature": SIGNATURE, "binding": "index",
               **facts, **read_tensors(target, source=job.model.source),
               "tools": tool_versions(*_TOOLS)}
    details["parity"] = _parity(job, target)
    if job.model.is_onnx:
        details["converted_with"] = "onnx2torch (static shapes) + litert-torch"
    return ExportedFile(path=target, details=details)


def _with_torch_module(job: ExportJob) -> ExportJob | ExportedFile:
    """An ONNX-only source, rebuilt as a torch module by onnx2torch (seconds, no TensorFlow)
    and then converted like any torch model. Where onnx2torch lacks an op, onnx2tf converts
    the file instead if its extra is installed; otherwise the error names the op."""
    from .onnx_torch import UnsupportedOnnxOps

    source = job.onnx_fp32 if job.onnx_fp32.is_file() else job.model.onnx_path
    key = (job.model.source_sha256, job.spec.height, job.spec.width)
    module = _ONNX_MODULES.get(key)
    if module is None:
        from .onnx_torch import torch_from_onnx

        try:
            module = torch_from_onnx(source, height=job.spec.height, width=job.spec.width,
                                     source=job.model.source)
        except UnsupportedOnnxOps:
            from .onnx2tf_convert import REQUIRED_MODULES, convert_onnx

            if all(importlib.util.find_spec(m) for m in REQUIRED_MODULES):
                return convert_onnx(job)
            raise
        _ONNX_MODULES.clear()  # one model per export: keep only the latest
        _ONNX_MODULES[key] = module
    return replace(job, model=replace(job.model, module=module))


# (source sha256, height, width) -> the torch module onnx2torch rebuilt for it: the fp32,
# fp16 and INT8 cells (and fallbacks) of one export share it.
_ONNX_MODULES: dict[tuple[str, int, int], Any] = {}
# The same key (plus the module's class) -> the fp32 NHWC file every precision derives from:
# litert-torch converts once per export, not once per precision (about a minute on the
# 447k-parameter sample at 320 on this 2-core CPU).
_FLOAT_FILES: dict[tuple[str, str, int, int, str], Path] = {}


# --- precisions ----------------------------------------------------------------------------


def _fp32(job: ExportJob, target: Path) -> dict[str, Any]:
    shutil.copyfile(_float_file(job), target)
    return {"method": "litert-torch float32"}


def _fp16(job: ExportJob, target: Path) -> dict[str, Any]:
    quantizer, qtyping = _ai_edge_quantizer()
    float_file = _float_file(job)
    q = quantizer.Quantizer(str(float_file))
    q.update_quantization_recipe(
        regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
        op_config=qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
            compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True))
    _quantize(job, q, target, calibration=None)
    return {"method": "ai-edge-quantizer float_casting (fp16 weights, fp32 compute)"}


def _int8(job: ExportJob, target: Path) -> dict[str, Any]:
    quantizer, qtyping = _ai_edge_quantizer()
    float_file = _float_file(job)
    q = quantizer.Quantizer(str(float_file))
    # static_wi8_ai8: int8 per-channel weights, int8 activations from min/max calibration.
    q.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                        activation_num_bits=8, weight_num_bits=8)
    tail = float_tail_types(job.model.module) if job.keep_float_tail else []
    names = _tail_tensor_names(float_file, tail)
    if job.keep_float_tail and not names:
        # No decode module to name (an ONNX source, a module of other classes): the tail
        # is read from the graph itself.
        names = graph_tail(float_file)
        tail = [GRAPH_TAIL] if names else []
    if names:
        q.update_quantization_recipe(
            # An op's scope is its output names joined and ended by ";" (ai-edge-quantizer).
            regex="(?:^|;)(?:" + "|".join(re.escape(n) for n in names) + ");",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE)
    # Made as the quantizer reads them: at 640, 200 NHWC float tensors hold 983 MB.
    samples = _Samples(job.calibration or (), job.batch)
    _quantize(job, q, target, calibration={SIGNATURE: samples})
    facts: dict[str, Any] = {
        "method": "ai-edge-quantizer static_wi8_ai8 (per-channel int8 weights, int8 "
                  "activations, min/max calibration)",
        "calibration_samples": len(samples),
        "float_tail": tail if names else [],
        "float_tensors": len(names),
        "float_nodes": float_nodes(float_file, names),
    }
    if job.keep_float_tail and not names:
        facts["note"] = "no op between a conv and the outputs; the whole model is int8"
    return facts


def _int8_dynamic(job: ExportJob, target: Path) -> dict[str, Any]:
    quantizer, qtyping = _ai_edge_quantizer()
    float_file = _float_file(job)
    q = quantizer.Quantizer(str(float_file))
    q.add_dynamic_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                         num_bits=8)
    _quantize(job, q, target, calibration=None)
    return {"method": "ai-edge-quantizer dynamic_wi8_afp32 (per-channel int8 weights, int8 "
                      "activations quantized per inference by the runtime)"}


_PRECISIONS: dict[Precision, Callable[[ExportJob, Path], dict[str, Any]]] = {
    Precision.FP32: _fp32, Precision.FP16: _fp16, Precision.INT8: _int8,
}


# --- conversion helpers --------------------------------------------------------------------


def float_tail_types(module: Any) -> list[str]:
    """Qualified class names of the submodules that hold the decode/score tail.

    Args:
        module: A torch module.

    Returns:
        Sorted ``"package.module.Class"`` strings: litert-torch names each tensor after this
        path of the module that made it (and PT2E's module-type filter matches it too).
    """
    return sorted({f"{type(m).__module__}.{type(m).__qualname__}" for m in module.modules()
                   if type(m).__name__ in FLOAT_TAIL_CLASSES})


def check_calibration(job: ExportJob) -> None:
    """Refuses INT8 without calibration, and tensors that do not fit the input spec.

    Raises:
        DatasetError: What is wrong, with the shape expected.
    """
    if job.precision is not Precision.INT8:
        return
    want = (1, 3, job.spec.height, job.spec.width)
    if not job.calibration:
        raise DatasetError(
            f"INT8 TFLite export of {job.model.source} needs calibration data; none was given.",
            hint="Pass a folder of images, a video or a dataset as calibration (--calib).")
    for i, tensor in enumerate(job.calibration):
        if tuple(np.shape(tensor)) != want or np.asarray(tensor).dtype.kind != "f":
            raise DatasetError(
                f"Calibration tensor {i} has shape {tuple(np.shape(tensor))} "
                f"({np.asarray(tensor).dtype}); the model takes float {list(want)}.",
                hint="Build calibration tensors with edgekit.preprocess from the bundle's "
                     "input spec.")


def _channel_last(module: Any) -> Any:
    import litert_torch

    return litert_torch.to_channel_last_io(module.eval(), args=[0]).eval()


def _sample(job: ExportJob) -> Any:
    import torch

    # The file's batch is the sample's: TFLite has no dynamic batch (export/batch.py).
    batch = job.batch if isinstance(job.batch, int) else 1
    return torch.zeros(batch, job.spec.height, job.spec.width, 3)


class _Samples:
    """ai-edge-quantizer's calibration inputs for one signature, each made when read; at
    a batch N (export --batch), N tensors stacked per input, the last group filled up from
    the first tensors so every sample is a whole batch of real images."""

    def __init__(self, tensors: Any, batch: int | str = 1) -> None:
        n = batch if isinstance(batch, int) else 1
        self.tensors = tensors
        self.groups = [[(start + k) % len(tensors) for k in range(n)]
                       for start in range(0, len(tensors), n)]

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return ({"args_0": _nhwc(np.concatenate([self.tensors[i] for i in group]))}
                for group in self.groups)


def _nhwc(tensor: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(tensor, np.float32).transpose(0, 2, 3, 1))


def _convert(job: ExportJob, module: Any, target: Path, **kwargs: Any) -> None:
    import litert_torch

    with _quiet() as log:
        try:
            litert_torch.convert(module, (_sample(job),), **kwargs).export(str(target))
        except Exception as exc:  # litert-torch raises RuntimeError/AssertionError/...
            raise _conversion_error(job, exc, log.getvalue(), "litert-torch") from None


def _ai_edge_quantizer() -> tuple[Any, Any]:
    quantizer = require("ai_edge_quantizer.quantizer", package="ai-edge-quantizer",
                        extra="tflite", purpose="fp16 and INT8 .tflite files")
    return quantizer, require("ai_edge_quantizer.qtyping", package="ai-edge-quantizer",
                              extra="tflite")


def _float_file(job: ExportJob) -> Path:
    """The fp32 NHWC file every precision starts from, converted once per model and input
    size (beside the job's workdir, shared by the export's cells)."""
    module = job.model.module
    key = (job.model.source_sha256, f"{type(module).__module__}.{type(module).__qualname__}",
           job.spec.height, job.spec.width, str(job.batch))
    path = _FLOAT_FILES.get(key)
    if path is not None and path.is_file():
        return path
    path = job.workdir.parent / f"tflite-float32-{job.model.source_sha256[:12]}-" \
        f"{job.batch}x{job.spec.height}x{job.spec.width}.tflite"
    job.workdir.parent.mkdir(parents=True, exist_ok=True)
    _convert(job, _channel_last(module), path)
    _FLOAT_FILES[key] = path
    return path


# Ops that only move values. The head's maps are reshaped and concatenated across levels
# before the tail; kept int8, the three levels' class logits share one range, and the sparse
# positive logits lose their resolution. Measured on the sample detector (320, 300 synthetic
# scenes, 200 other scenes for calibration), mAP@0.5:0.95 vs fp32: tail float -1.43 points,
# tail + these layout ops + the convs producing them (the head's 1x1 output convs) -0.94,
# at the same latency.
_LAYOUT_OPS = frozenset({"RESHAPE", "TRANSPOSE", "CONCATENATION", "SLICE", "STRIDED_SLICE",
                         "SQUEEZE", "EXPAND_DIMS", "PACK", "UNPACK", "SPLIT", "GATHER"})


def _tail_tensor_names(path: Path, tail: list[str]) -> list[str]:
    """Output tensor names of the ops to keep float: the tail, the model outputs, the
    layout-only ops (reshape/transpose/concat) feeding them and the ops producing those
    (the head's output convs).

    litert-torch names every tensor after its module path (``.../pkg.mod.Decode_decode;4``),
    so the tail's ops are found by its class names. The graph's output (the final concat) is
    kept float with it, so the mixed box/score tensor never passes through int8.
    """
    if not tail:
        return []
    module = litert_interpreter(purpose="finding the float tail of .tflite files")
    with native_stderr_to_log("edgekit.export"):  # LiteRT's XNNPACK note: debug log
        interpreter = module.Interpreter(model_path=str(path))
    pattern = re.compile("|".join(re.escape(name) + "_" for name in tail))
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # the only API that lists ops and their tensors
    outputs = {d["index"] for d in interpreter.get_output_details()}
    keep = [op for op in ops if any(pattern.search(names[i]) for i in op["outputs"])]
    if not keep:
        return []
    keep += [op for op in ops if outputs & set(op["outputs"]) and op not in keep]
    producer = {i: op for op in ops for i in op["outputs"]}
    seen, stack = {op["index"] for op in keep}, list(keep)
    while stack:
        for i in stack.pop()["inputs"]:
            op = producer.get(i)
            if op is None or op["index"] in seen:
                continue
            seen.add(op["index"])
            keep.append(op)
            if op["op_name"] in _LAYOUT_OPS:  # walk on; stop after the first real op
                stack.append(op)
    return sorted({names[i] for op in keep for i in op["outputs"]})


GRAPH_TAIL = "graph: every op after the last conv/matmul on each path to an output"
# Ops that hold weights: walking back from the outputs, the first one met ends the decode
# tail on that path (it is kept float with the tail, as the head's output convs are above).
_WEIGHT_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D",
                         "FULLY_CONNECTED", "BATCH_MATMUL"})


def graph_tail(path: Path) -> list[str]:
    """Output tensor names of the decode tail read from a float .tflite graph: every op
    between the outputs and the last weight op (conv, fully connected, matmul) on each
    path back from them, those weight ops included.

    That is where the mixed-scale tensors live (pixel boxes next to 0..1 scores, summed
    anchors, concatenated levels), for any head convention. One exception: a conv fed by a
    softmax is YOLOv8's distribution-focal decode (a fixed 0..15 expectation), not a
    feature layer, so the walk goes on through it.
    """
    ops, names, outputs = _graph(path)
    producer = {i: op for op in ops for i in op["outputs"]}
    keep: dict[int, dict[str, Any]] = {}
    stack = [producer[i] for i in outputs if i in producer]
    while stack:
        op = stack.pop()
        if op["index"] in keep:
            continue
        keep[op["index"]] = op
        if op["op_name"] in _WEIGHT_OPS and not _fed_by_softmax(op, producer):
            continue
        stack.extend(producer[i] for i in op["inputs"] if i in producer)
    return sorted({names[i] for op in keep.values() for i in op["outputs"]})


def _fed_by_softmax(op: dict[str, Any], producer: dict[int, dict[str, Any]]) -> bool:
    current = producer.get(op["inputs"][0]) if len(op["inputs"]) else None
    while current is not None and current["op_name"] in _LAYOUT_OPS:
        current = producer.get(current["inputs"][0]) if len(current["inputs"]) else None
    return current is not None and current["op_name"] == "SOFTMAX"


def float_nodes(path: Path, names: list[str]) -> list[str]:
    """The ops kept float, as ``OP source-node`` (the module path litert-torch records:
    for an ONNX source, the ONNX node's name with '.' written '/'), in graph order."""
    if not names:
        return []
    ops, tensor_names, outputs = _graph(path)
    wanted, found = set(names), []
    for op in ops:
        hits = [tensor_names[i] for i in op["outputs"] if tensor_names[i] in wanted]
        if hits:
            found.append(f"{op['op_name']} {_node_name(hits[0])}")
    return found


def _node_name(tensor: str) -> str:
    """``.../pkg.mod.Class_inner/decode/Sigmoid;1`` -> ``inner/decode/Sigmoid``: module
    paths carry no dots (litert-torch writes them with '/'), so the class is the text
    between the last '.' and the first '_' after it."""
    if tensor.startswith("serving_default_"):
        return tensor.removeprefix("serving_default_").removesuffix("_output") + " (output)"
    head = tensor.split(";")[0]
    _, _, last = head.rpartition(".")
    _, sep, path = last.partition("_")
    return path if sep and path else head


def _graph(path: Path) -> tuple[list[dict[str, Any]], dict[int, str], set[int]]:
    """(ops, tensor index -> name, output tensor indices) of a .tflite file."""
    module = require("ai_edge_litert.interpreter", package="ai-edge-litert", extra="litert")
    with native_stderr_to_log("edgekit.export"):  # LiteRT's XNNPACK note: debug log
        interpreter = module.Interpreter(model_path=str(path))
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    ops = [op for op in interpreter._get_ops_details()  # the only API listing ops
           if op["op_name"] != "DELEGATE"]
    return ops, names, {d["index"] for d in interpreter.get_output_details()}


def _quantize(job: ExportJob, q: Any, target: Path, *,
              calibration: dict[str, list[dict[str, np.ndarray]]] | None) -> None:
    with _quiet() as log, warnings.catch_warnings():
        # Calibration reads every intermediate tensor, which LiteRT warns is for debugging.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        try:
            # The quantizer calibrates by running the float file in LiteRT, tensor by tensor.
            result = q.calibrate(calibration, num_threads=2) if calibration else None
            quantized = q.quantize(result) if result is not None else q.quantize()
            quantized.export_model(str(target), overwrite=True)
        except Exception as exc:  # the quantizer raises untyped errors
            raise _conversion_error(job, exc, log.getvalue(), "ai-edge-quantizer") from None


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Silences litert-torch's progress lines and the quantizer's prints (they would tear
    through the CLI's progress bars); the text is kept for error messages."""
    log = io.StringIO()
    before = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield log
    finally:
        if before is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = before


# Where converters and LiteRT name the op they cannot take.
_OP_PATTERNS = (
    re.compile(r"Lowering not found: (\S+)"),                    # litert-torch
    re.compile(r"builtin opcode '([^']+)'"),                     # LiteRT loading a file
    re.compile(r"unresolved custom op: (\w+)"),                  # LiteRT, Flex/custom ops
    re.compile(r"onnx_op_type: (\w+)"),                          # onnx2tf
    re.compile(r"(aten\.\w+(?:\.\w+)?)"),                        # torch.export / PT2E
)


def unsupported_op(text: str) -> str | None:
    """Returns the op a converter or runtime message names as unsupported, if any."""
    for pattern in _OP_PATTERNS:
        if match := pattern.search(text):
            return match.group(1)
    return None


def _conversion_error(job: ExportJob, exc: BaseException, log: str, tool: str) -> ModelError:
    text = f"{exc}\n{log}"
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()),
                 type(exc).__name__)
    op = unsupported_op(text)
    what = f"the op {op}" if op else "the model"
    return ModelError(
        f"{tool} cannot convert {what} of {job.model.source} to TFLite "
        f"({job.precision.value}): {first[:300]}",
        hint="Replace that op with supported ones (or export it outside the model), or skip "
             "the tflite format for this model." if op else
             "Check that the model traces with torch.export at a fixed input size.")


# --- reading the file back -----------------------------------------------------------------


def read_tensors(path: Path, *, source: str) -> dict[str, Any]:
    """Loads a .tflite file in LiteRT and reads back what a runner needs of every tensor.

    Args:
        path: The file.
        source: The model source, named in errors.

    Returns:
        ``{"inputs": [...], "outputs": [...]}``, each entry with index, name, shape, dtype,
        and the (scale, zero_point) of quantized tensors (None for float ones).

    Raises:
        ModelError: LiteRT cannot load the file (names the op when LiteRT does).
    """
    module = litert_interpreter(purpose="checking .tflite files")
    try:
        with native_stderr_to_log("edgekit.export"):  # LiteRT's XNNPACK note: debug log
            interpreter = module.Interpreter(model_path=str(path))
            interpreter.allocate_tensors()
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError with the op name
        op = unsupported_op(str(exc))
        raise ModelError(
            f"LiteRT cannot load the TFLite file converted from {source}"
            + (f": it has no kernel for the op {op}." if op else f": {str(exc)[:300]}"),
            hint="Replace that op in the model, or skip the tflite format for it.") from None
    return {"inputs": [_tensor(d) for d in interpreter.get_input_details()],
            "outputs": [_tensor(d) for d in interpreter.get_output_details()]}


def _tensor(detail: dict[str, Any]) -> dict[str, Any]:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantized = dtype in (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)) and scale
    return {"index": int(detail["index"]), "name": str(detail["name"]),
            "shape": [int(d) for d in detail["shape"]], "dtype": dtype.name,
            "scale": float(scale) if quantized else None,
            "zero_point": int(zero_point) if quantized else None}


def _parity(job: ExportJob, path: Path) -> dict[str, Any]:
    """Runs the file through edgekit's LiteRT backend (as runners will: NCHW in, the backend
    transposes and quantizes) and compares with torch on one probe input."""
    import torch

    from edgekit.backends import BackendOptions
    from edgekit.backends.litert import LiteRtBackend

    if job.calibration:
        probe, what = np.asarray(job.calibration[0], np.float32), "first calibration tensor"
    else:
        rng = np.random.default_rng(_PROBE_SEED)
        probe = rng.random((1, 3, job.spec.height, job.spec.width), dtype=np.float32)
        what = f"uniform noise (seed {_PROBE_SEED})"
    backend = LiteRtBackend(path, options=BackendOptions(threads=1, extra={
        "layout": Layout.NCHW.value, "model_layout": Layout.NHWC.value}))
    got = backend.run([probe])
    with torch.no_grad():
        want = job.model.module(torch.from_numpy(probe))
    want = [w.numpy() for w in (want if isinstance(want, tuple | list) else [want])]
    shapes = ([list(g.shape) for g in got], [list(w.shape) for w in want])
    if shapes[0] != shapes[1]:
        raise ModelError(f"The TFLite file from {job.model.source} outputs {shapes[0]}, "
                         f"torch {shapes[1]}.")
    diff = max(float(np.abs(np.asarray(g, np.float64) - w).max()) if w.size else 0.0
               for g, w in zip(got, want, strict=True))
    return {"max_abs_diff": diff, "probe": what,
            "reference": "onnx2torch module" if job.model.is_onnx else "torch"}


def litert_interpreter(*, purpose: str) -> Any:
    """LiteRT's interpreter module (``LITERT``), or an error naming its extra."""
    return require(LITERT.module, package=LITERT.package, extra=LITERT.extra, purpose=purpose)


def tflite_fallbacks(failure: GateFailure) -> Iterator[Fallback]:
    """``dynamic-activations``: int8 weights, each activation quantized per inference from its
    own range instead of a calibrated one."""
    dynamic = replace(failure.job, workdir=failure.job.workdir / "dynamic")
    yield "dynamic-activations", lambda: failure.export(dynamic, activations="dynamic")


EXPORTER = Exporter(format=Format.TFLITE, export=export_tflite, tools=_TOOLS,
                    fallbacks=tflite_fallbacks)

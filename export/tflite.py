"""TFLite/LiteRT artifacts: fp32, fp16 and INT8 ``.tflite`` files with NHWC input.

PyTorch models go through ``litert-torch`` (no TensorFlow): the module is wrapped with
``litert_torch.to_channel_last_io`` so the file takes NHWC, TFLite's native layout, and
XNNPACK runs it without a leading transpose. ONNX-only sources go through onnx2tf
(:mod:`edgekit.export.onnx2tf_convert`), an optional extra that needs TensorFlow.

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
        the head's output convs before those.

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
import io
import os
import re
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
           "EXPORTER"]

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
            through onnx2tf (the ``onnx2tf`` extra, which needs TensorFlow).
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
        MissingDependencyError: litert-torch (or, for ONNX-only inputs, TensorFlow/onnx2tf)
            is not installed.
    """
    if activations not in ("static", "dynamic"):
        raise ModelError(f"TFLite INT8 activations '{activations}' is not known.",
                         hint="Use 'static' or 'dynamic'.")
    if job.model.module is None:
        from .onnx2tf_convert import convert_onnx

        if job.batch != 1:
            raise ModelError(f"TFLite at batch {job.batch} is made from PyTorch models only; "
                             f"{job.model.source} is an ONNX file (onnx2tf converts batch 1).",
                             hint="Export the PyTorch model, or leave tflite out of --to.")

        return convert_onnx(job)
    check_calibration(job)
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
    return ExportedFile(path=target, details=details)


# --- precisions ----------------------------------------------------------------------------


def _fp32(job: ExportJob, target: Path) -> dict[str, Any]:
    _convert(job, _channel_last(job.model.module), target)
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
    float_file.unlink(missing_ok=True)
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
    if names:
        q.update_quantization_recipe(
            # An op's scope is its output names joined and ended by ";" (ai-edge-quantizer).
            regex="(?:^|;)(?:" + "|".join(re.escape(n) for n in names) + ");",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE)
    # Made as the quantizer reads them: at 640, 200 NHWC float tensors hold 983 MB.
    samples = _Samples(job.calibration or (), job.batch)
    _quantize(job, q, target, calibration={SIGNATURE: samples})
    float_file.unlink(missing_ok=True)
    facts: dict[str, Any] = {
        "method": "ai-edge-quantizer static_wi8_ai8 (per-channel int8 weights, int8 "
                  "activations, min/max calibration)",
        "calibration_samples": len(samples),
        "float_tail": tail if names else [],
        "float_tensors": len(names),
    }
    if job.keep_float_tail and not names:
        facts["note"] = ("no decode module found (classes "
                         f"{', '.join(sorted(FLOAT_TAIL_CLASSES))}); the whole model is int8")
    return facts


def _int8_dynamic(job: ExportJob, target: Path) -> dict[str, Any]:
    quantizer, qtyping = _ai_edge_quantizer()
    float_file = _float_file(job)
    q = quantizer.Quantizer(str(float_file))
    q.add_dynamic_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                         num_bits=8)
    _quantize(job, q, target, calibration=None)
    float_file.unlink(missing_ok=True)
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
    """The fp32 NHWC file the quantizer starts from (a scratch file in the job's workdir)."""
    path = job.workdir / "float32_source.tflite"
    _convert(job, _channel_last(job.model.module), path)
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
    got = backend.run([probe])[0]
    with torch.no_grad():
        want = job.model.module(torch.from_numpy(probe)).numpy()
    if got.shape != want.shape:
        raise ModelError(f"The TFLite file from {job.model.source} outputs {list(got.shape)}, "
                         f"torch {list(want.shape)}.")
    return {"max_abs_diff": float(np.abs(got - want).max()), "probe": what,
            "reference": "torch"}


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

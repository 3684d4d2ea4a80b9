"""LiteRT (TensorFlow Lite) backend: ``.tflite`` files on the CPU with XNNPACK.

``ai_edge_litert`` is the runtime; ``tflite_runtime`` is the fallback for old boards. Its last
release (2.14) imports beside numpy 2 but every Interpreter() then fails (``_ARRAY_API not
found``, see shared/TOOLCHAIN.md), so that failure is turned into a message saying so.

Callers always pass and get float tensors for float models: an int8/uint8 input with a
quantization scale is quantized here with that input's (scale, zero_point), and quantized
outputs are dequantized, so the Detector's preprocessed float tensor works on INT8 files too.
Tensors are bound by index (names differ between converters and between a model's float and
int8 files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Format, Layout
from ..errors import EdgekitError, MissingDependencyError, ModelError
from ..native_log import native_stderr_to_log
from .base import Backend, BackendOptions, Capabilities, Runtime, TensorInfo


@dataclass(frozen=True, slots=True)
class Quantization:
    """An integer tensor's affine quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        info = np.iinfo(dtype)
        q = np.round(np.asarray(x, np.float32) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (q.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)


class LiteRtBackend(Backend):
    """Runs ``.tflite`` files with LiteRT.

    ``options.extra``:
        ``xnnpack``: False to run LiteRT's builtin kernels without the XNNPACK delegate.
        ``layout``: the layout the caller's 4-D image tensors come in ("nchw"/"nhwc"); when
            it differs from the model's own (``model_layout``, or read from the input shape),
            the tensor is transposed here.
        ``model_layout``: the model input's layout, as the bundle artifact records it.
    """

    name = "litert"
    capabilities = Capabilities(formats=frozenset({Format.TFLITE}), devices=("cpu",))
    format = Format.TFLITE
    suffixes = (".tflite",)
    # tflite-runtime: old boards' fallback; it needs numpy<2 (see _load_error).
    runtimes = (Runtime(module="ai_edge_litert.interpreter", package="ai-edge-litert",
                        extra="litert"),
                Runtime(module="tflite_runtime.interpreter", package="tflite-runtime"))

    def __init__(self, path: Path, *, options: BackendOptions) -> None:
        super().__init__(path, options=options)
        module, runtime = self.import_runtime(purpose="running .tflite")
        self.package = runtime.package
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file.")
        self.xnnpack = options.extra.get("xnnpack", True) is not False
        resolver = module.OpResolverType.AUTO if self.xnnpack else \
            module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            # LiteRT prints its XNNPACK note straight to stderr: to the debug log instead.
            with native_stderr_to_log("edgekit.backends.litert"):
                self.interpreter = module.Interpreter(
                    model_path=str(self.path), num_threads=options.threads,
                    experimental_op_resolver_type=resolver)
                self.interpreter.allocate_tensors()
        except Exception as exc:
            raise self._load_error(exc) from None
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()
        self.input_quantization = [_quant(d) for d in self._in]
        self.output_quantization = [_quant(d) for d in self._out]
        self._inputs = [self._tensor_info(d, q) for d, q in zip(self._in, self.input_quantization,
                                                                 strict=True)]
        self._outputs = [self._tensor_info(d, q) for d, q in zip(self._out,
                                                                  self.output_quantization,
                                                                  strict=True)]
        self._transpose = self._layout_transpose(options)

    def _load_error(self, exc: Exception) -> EdgekitError:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        if "_ARRAY_API" in str(exc) or "numpy" in str(exc).lower():
            first, fallback = self.runtimes
            return MissingDependencyError(
                first.package, extra=first.extra,
                purpose=f"running .tflite with numpy {np.__version__}: {self.package} was "
                        "built for numpy 1.x and cannot run with numpy 2 (install "
                        f"{first.package}, or numpy<2 for {fallback.package})")
        return ModelError(f"LiteRT ({self.package}) cannot load {self.path}: {text}",
                          hint="Check that the file is a complete .tflite model.")

    @staticmethod
    def _tensor_info(detail: dict[str, Any], quant: Quantization | None) -> TensorInfo:
        signature = detail.get("shape_signature")
        dims = signature if signature is not None and len(signature) else detail["shape"]
        shape = tuple(None if int(d) < 0 else int(d) for d in dims)
        # A quantized tensor is exchanged as float: the backend does the (de)quantization.
        dtype = np.dtype(np.float32) if quant else np.dtype(detail["dtype"])
        return TensorInfo(str(detail["name"]), shape, dtype)

    def _layout_transpose(self, options: BackendOptions) -> tuple[int, ...] | None:
        caller = options.extra.get("layout")
        if not caller or len(self._inputs[0].shape) != 4:
            return None
        model = options.extra.get("model_layout") or model_layout(self._inputs[0].shape)
        caller, model = Layout.parse(caller), Layout.parse(model)
        if caller is model:
            return None
        return (0, 2, 3, 1) if model is Layout.NHWC else (0, 3, 1, 2)

    @property
    def executed_on(self) -> str:
        # The delegate applies to the ops it supports; the rest run on LiteRT's own kernels.
        return "CPU (XNNPACK)" if self.xnnpack else "CPU (builtin kernels)"

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._in):
            raise ModelError(f"{self.path.name} takes {len(self._in)} inputs, got {len(inputs)}.")
        resized, prepared = False, []
        for i, (detail, quant, array) in enumerate(zip(self._in, self.input_quantization, inputs,
                                                        strict=True)):
            array = np.asarray(array)
            if i == 0 and self._transpose is not None:
                array = array.transpose(self._transpose)
            if quant is not None and array.dtype.kind == "f":
                array = quant.quantize(array, detail["dtype"])
            array = np.ascontiguousarray(array, dtype=detail["dtype"])
            if tuple(array.shape) != tuple(detail["shape"]):
                self.interpreter.resize_tensor_input(detail["index"], list(array.shape))
                resized = True
            prepared.append(array)
        if resized:
            self.interpreter.allocate_tensors()
            self._in = self.interpreter.get_input_details()
            self._out = self.interpreter.get_output_details()
        for detail, array in zip(self._in, prepared, strict=True):
            self.interpreter.set_tensor(detail["index"], array)
        self.interpreter.invoke()
        outputs = []
        for detail, quant in zip(self._out, self.output_quantization, strict=True):
            value = self.interpreter.get_tensor(detail["index"])
            outputs.append(quant.dequantize(value) if quant is not None else value.copy())
        return outputs

    def versions(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return {self.package: version(self.package)}
        except PackageNotFoundError:
            return {self.package: "unknown"}


def model_layout(shape: tuple[int | None, ...]) -> str:
    """Reads an image input's layout from its shape: channels (1, 3 or 4) last means NHWC."""
    return "nhwc" if shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4) else "nchw"


def _quant(detail: dict[str, Any]) -> Quantization | None:
    """The (scale, zero_point) of an int8/uint8 tensor, or None for a float/plain-int one."""
    if np.dtype(detail["dtype"]) not in (np.dtype(np.int8), np.dtype(np.uint8)):
        return None
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return Quantization(float(scale), int(zero_point)) if scale else None

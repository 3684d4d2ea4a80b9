"""onnxruntime backend: CPU everywhere, CUDA/TensorRT execution providers where installed.

onnxruntime silently drops a requested provider it does not have and runs on CPU (see
../shared/TOOLCHAIN.md), so what executed is read back from ``session.get_providers()``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..bundle import Format
from ..errors import ModelError
from .base import Backend, BackendOptions, Capabilities, Runtime, TensorInfo

# Provider chains per requested device, best first; CPU always closes the chain so the
# session can be created, and executed_on tells the truth afterwards.
PROVIDER_CHAINS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    "openvino": ("OpenVINOExecutionProvider", "CPUExecutionProvider"),
}

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class OnnxRuntimeBackend(Backend):
    """Runs ``.onnx`` files with onnxruntime.

    ``options.extra``: ``providers`` (explicit provider list, overriding the device chain),
    ``provider_options`` (list of dicts, one per provider).
    """

    name = "onnxruntime"
    capabilities = Capabilities(formats=frozenset({Format.ONNX}), devices=tuple(PROVIDER_CHAINS))
    format = Format.ONNX
    suffixes = (".onnx",)
    # onnxruntime-gpu (Jetson, CUDA hosts) installs the same module as plain onnxruntime.
    runtimes = (Runtime(module="onnxruntime", package="onnxruntime", extra="onnxruntime"),
                Runtime(module="onnxruntime", package="onnxruntime-gpu"))

    def __init__(self, path: Path, *, options: BackendOptions) -> None:
        super().__init__(path, options=options)
        ort, _ = self.import_runtime(purpose="running .onnx models")
        self.requested = self._providers(ort, options)
        so = ort.SessionOptions()
        if options.threads:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3  # the CPU fallback is reported through executed_on instead
        if options.extra.get("spinning") is not None:
            # Idle intra-op threads spin for work by default: fastest alone, but they take
            # the cores from the threads beside them (a pipeline's decoding and drawing).
            so.add_session_config_entry("session.intra_op.allow_spinning",
                                        "1" if options.extra["spinning"] else "0")
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such model file.")
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=so,
                providers=list(self.requested),
                provider_options=options.extra.get("provider_options"),
            )
        except Exception as exc:  # onnxruntime raises several untyped errors for bad files
            first = str(exc).strip().splitlines()[0][:300]
            raise ModelError(
                f"onnxruntime cannot load {self.path}: {first}",
                hint="Check that the file is a complete ONNX model (re-export or re-download it).",
            ) from None
        self._inputs = [self._info(i) for i in self.session.get_inputs()]
        self._outputs = [self._info(o) for o in self.session.get_outputs()]
        self._input_names = [i.name for i in self._inputs]
        self._version = ort.__version__

    @staticmethod
    def _providers(ort, options: BackendOptions) -> tuple[str, ...]:
        explicit = options.extra.get("providers")
        if explicit:
            return tuple(explicit)
        chain = PROVIDER_CHAINS.get(options.device.lower())
        if chain is None:
            raise ModelError(
                f"onnxruntime has no provider chain for device '{options.device}'.",
                hint=f"Use one of: {', '.join(PROVIDER_CHAINS)}.",
            )
        return chain

    @staticmethod
    def _info(node) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) else None for d in node.shape)
        return TensorInfo(node.name, shape, np.dtype(_DTYPES.get(node.type, np.float32)))

    @property
    def executed_on(self) -> str:
        return self.session.get_providers()[0]

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._input_names):
            raise ModelError(
                f"{self.path.name} takes {len(self._input_names)} inputs, got {len(inputs)}."
            )
        # IOBinding: the inputs are bound in place (OrtValues over the caller's memory) and the
        # outputs fetched without session.run's feed-dict checks, the zero-copy path the
        # runtime documents. One binding per call: a session may be shared by threads (its
        # run is thread-safe), a binding may not.
        binding = self.session.io_binding()
        for name, array in zip(self._input_names, inputs, strict=True):
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for output in self._outputs:
            binding.bind_output(output.name)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def beside_other_work(self) -> Backend:
        """The same model in a session whose idle threads sleep instead of spinning (unless
        ``extra["spinning"]`` was set). Spinning threads take the cores the pipeline's other
        stages need: measured with the 640 reference model on this 2-core host (shared, load
        about 9), spinning off ran inference 1.5x faster and the file-source pipeline at
        1.14x the model-only loop (spinning on: 1.02x; benchmarks/pipeline_throughput.py)."""
        if self.options.extra.get("spinning") is not None:
            return self
        return type(self)(self.path, options=replace(
            self.options, extra={**self.options.extra, "spinning": False}))

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": self._version}
